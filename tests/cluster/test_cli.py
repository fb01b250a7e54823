"""``telic run --ray``, ``telic serve --ray`` and ``telic cluster status`` refuse what cannot
work in one line and exit 1, never a traceback (no cluster needed: nothing gets that far)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.cluster.swarm import SWARM

DSN = os.environ.get("TELIC_PG_DSN", "")
HERE = Path(__file__).resolve().parent


def telic(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(HERE)}
    env.pop("TELIC_DB", None)
    env.pop("TELIC_RAY_ADDRESS", None)
    return subprocess.run(
        [sys.executable, "-m", "telic", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )


def one_line_failure(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "swarm.toml"
    path.write_text(SWARM, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "command",
    [
        ["cluster", "status", "--ray", "127.0.0.1:1"],
        ["run", "SPEC", "--ray", "127.0.0.1:1"],
        ["serve", "--ray", "127.0.0.1:1", "--port", "1"],
    ],
)
def test_a_cluster_ledger_that_is_not_postgresql_is_refused(
    tmp_path: Path, spec: Path, command: list[str]
) -> None:
    args = [str(spec) if a == "SPEC" else a for a in command]
    line = one_line_failure(telic(tmp_path, *args, "--db", str(tmp_path / "ledger.db")))
    assert "need a PostgreSQL ledger" in line and "--db postgresql://" in line


def test_a_postgresql_server_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    proc = telic(
        tmp_path, "cluster", "status", "--ray", "127.0.0.1:1", "--db",
        "postgresql://nobody@127.0.0.1:1/nothing",
    )  # fmt: skip
    assert "cannot open ledger at postgresql://nobody@127.0.0.1:1/nothing" in one_line_failure(proc)


@pytest.mark.skipif(not DSN, reason="set TELIC_PG_DSN to reach PostgreSQL")
@pytest.mark.parametrize("address", ["127.0.0.1:1", "nonsense"])
def test_no_cluster_at_the_address_is_one_line(tmp_path: Path, spec: Path, address: str) -> None:
    for args in (
        ["cluster", "status", "--ray", address, "--db", DSN],
        ["run", str(spec), "--ray", address, "--db", DSN],
    ):
        line = one_line_failure(telic(tmp_path, *args))
        assert f"cannot reach the Ray cluster at {address}" in line, line
