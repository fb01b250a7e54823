"""Damaged ledgers and bad places through the real CLI: one line on stderr and a non-zero
exit, never a traceback; damage in one run leaves the others readable and names its first
bad sequence number."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.cli.conftest import Telic

READERS = ("verify", "state", "show", "trace", "replay", "resume")


@pytest.fixture(scope="module")
def two_runs() -> Iterator[tuple[Path, list[str]]]:
    """A ledger holding two reference runs (built once: the tests damage copies)."""
    root = Path(tempfile.mkdtemp(prefix="telic-damage-"))
    db = root / "ledger.db"
    for seed in ("1", "2"):
        subprocess.run(
            [sys.executable, "-m", "telic", "demo", "--instant", "--seed", seed, "--db", str(db)],
            check=True,
            capture_output=True,
            cwd=root,
        )
    with sqlite3.connect(db) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM runs ORDER BY rid")]
    yield db, ids
    shutil.rmtree(root, ignore_errors=True)


def _copy(src: Path, tmp_path: Path) -> Path:
    db = tmp_path / "damaged.db"
    shutil.copy(src, db)
    return db


def _one_line_error(proc: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("telic: "), proc.stderr
    return lines[0]


def _first_bad(telic: Telic, db: Path, run: str) -> int:
    proc = telic("verify", run, "--db", str(db), "--json", check=False)
    assert proc.returncode == 1, proc.stderr
    (report,) = json.loads(proc.stdout)
    return int(report["first_bad"])


def _readers_name(
    telic: Telic, db: Path, run: str, seq: int, readers: tuple[str, ...] = READERS
) -> None:
    for command in readers:
        line = _one_line_error(telic(command, run, "--db", str(db), check=False))
        named = re.search(r"(?:seq|sequence) (\d+)", line)
        assert named is not None and int(named.group(1)) == seq, (command, line)


@pytest.mark.parametrize("cut", [100, 3000])
def test_a_ledger_cut_inside_its_last_page(
    telic: Telic, two_runs: tuple[Path, list[str]], tmp_path: Path, cut: int
) -> None:
    db = _copy(two_runs[0], tmp_path)
    with db.open("r+b") as f:
        f.truncate(db.stat().st_size - cut)
    damaged = [
        r for r in two_runs[1] if telic("verify", r, "--db", str(db), check=False).returncode
    ]
    assert len(damaged) == 1, "the cut reaches one run's last rows"
    (run,) = damaged
    seq = _first_bad(telic, db, run)
    _readers_name(telic, db, run, seq)
    (other,) = set(two_runs[1]) - {run}
    assert telic("state", other, "--db", str(db)).returncode == 0  # confined to one run
    listed = {
        r["id"]: r["status"] for r in json.loads(telic("runs", "--db", str(db), "--json").stdout)
    }
    assert listed == {other: "completed", run: f"damaged@{seq}"}


def test_a_causes_column_that_is_not_integers(
    telic: Telic, two_runs: tuple[Path, list[str]], tmp_path: Path
) -> None:
    db = _copy(two_runs[0], tmp_path)
    run, other = two_runs[1]
    with sqlite3.connect(db) as conn:
        (rid,) = conn.execute("SELECT rid FROM runs WHERE id = ?", (run,)).fetchone()
        # After the run's last snapshot, so that every reader folds over it (one that starts
        # from a later snapshot never reads it, and need not).
        (last,) = conn.execute("SELECT max(seq) FROM snapshots WHERE rid = ?", (rid,)).fetchone()
        seq = (last or 0) + 7
        conn.execute(
            "UPDATE transitions SET causes = 'x,1.5' WHERE rid = ? AND seq = ?", (rid, seq)
        )
    assert _first_bad(telic, db, run) == seq
    # ``state`` folds only the columns a state is made of (docs/ledger.md, "Reading a state
    # trusts the bytes as stored"), and the causes are not one of them: it answers, the
    # same state as before the damage; every reader of the records names the bad seq.
    _readers_name(telic, db, run, seq, tuple(r for r in READERS if r != "state"))
    damaged = telic("state", run, "--db", str(db), "--json").stdout
    assert json.loads(damaged) == json.loads(
        telic("state", run, "--db", str(two_runs[0]), "--json").stdout
    )
    assert telic("verify", other, "--db", str(db)).returncode == 0


def test_a_tampered_snapshot_is_refused_by_every_reader(
    telic: Telic, two_runs: tuple[Path, list[str]], tmp_path: Path
) -> None:
    db = _copy(two_runs[0], tmp_path)
    run = two_runs[1][0]
    with sqlite3.connect(db) as conn:
        (rid,) = conn.execute("SELECT rid FROM runs WHERE id = ?", (run,)).fetchone()
        conn.execute("DELETE FROM snapshots WHERE rid = ?", (rid,))
        state = conn.execute(
            "SELECT seq FROM transitions WHERE rid = ? AND seq = 100", (rid,)
        ).fetchone()
        assert state is not None
    # A snapshot at 100 that is not the state there (the state at 0): every reader refuses.
    fake = json.loads(telic("state", run, "--db", str(two_runs[0]), "--at", "0", "--json").stdout)
    fake["seq"] = 100
    data = json.dumps(fake, sort_keys=True, separators=(",", ":")).encode()
    with sqlite3.connect(db) as conn:
        chain = conn.execute(
            "SELECT hash FROM transitions WHERE rid = ? AND seq = 100", (rid,)
        ).fetchone()[0]
        import hashlib

        conn.execute(
            "INSERT INTO snapshots VALUES (?, 100, ?, ?, ?, ?)",
            (rid, "00" * 32, chain, hashlib.sha256(data).digest(), data),
        )
    assert _first_bad(telic, db, run) == 100
    line = _one_line_error(telic("replay", run, "--db", str(db), check=False))
    assert "sequence 100" in line and "snapshot" in line


def test_snapshot_every_that_is_not_a_positive_integer(telic: Telic, tmp_path: Path) -> None:
    for value in ("abc", "0", "-3"):
        url = f"sqlite:///{tmp_path}/l.db?snapshot_every={value}"
        line = _one_line_error(telic("demo", "--instant", "--db", url, check=False))
        assert "snapshot_every" in line
    assert not (tmp_path / "l.db").exists()


def test_verify_all_on_a_zero_byte_file_leaves_it_untouched(telic: Telic, tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    line = _one_line_error(telic("verify", "--all", "--db", str(empty), check=False))
    assert "empty" in line
    assert empty.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]


def test_diff_refuses_a_reversed_range(
    telic: Telic, two_runs: tuple[Path, list[str]], tmp_path: Path
) -> None:
    db = _copy(two_runs[0], tmp_path)
    run = two_runs[1][0]
    line = _one_line_error(telic("diff", run, "40", "20", "--db", str(db), check=False), code=2)
    assert "40" in line and "20" in line
    assert telic("diff", run, "20", "40", "--db", str(db)).stdout


# -- places the user cannot write or read --------------------------------------------------


def _unprivileged(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``telic`` as a user to whom file permissions apply: as root, without the capabilities
    that let root ignore them (``setpriv`` drops them for the child)."""
    command = [sys.executable, "-m", "telic", *args]
    if os.getuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: file permissions would not apply")
        drop = "-dac_override,-dac_read_search"
        command = [setpriv, "--bounding-set", drop, "--", *command]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture
def shared_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory whose subdirectories the test locks (and unlocks afterwards)."""
    yield tmp_path
    for path in tmp_path.iterdir():
        if path.is_dir():
            path.chmod(0o755)


def test_a_ledger_in_a_read_only_directory_is_read(
    two_runs: tuple[Path, list[str]], shared_dir: Path
) -> None:
    where = shared_dir / "ro"
    where.mkdir()
    db = where / "ledger.db"
    shutil.copy(two_runs[0], db)
    db.chmod(0o444)
    where.chmod(0o555)
    proc = _unprivileged("verify", "--all", "--db", str(db), cwd=shared_dir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(": ok (") == 2
    run = two_runs[1][0]
    state = _unprivileged("state", run, "--db", str(db), "--json", cwd=shared_dir)
    assert json.loads(state.stdout)["status"] == "completed"
    assert sorted(p.name for p in where.iterdir()) == ["ledger.db"]  # nothing created


def test_a_db_in_an_unreadable_directory(shared_dir: Path) -> None:
    locked = shared_dir / "locked"
    locked.mkdir()
    (locked / "ledger.db").touch()
    locked.chmod(0o000)
    for command in (["runs"], ["verify", "--all"], ["state", "r"], ["demo", "--instant"]):
        proc = _unprivileged(*command, "--db", str(locked / "ledger.db"), cwd=shared_dir)
        line = _one_line_error(proc)
        assert "ledger.db" in line and "ermission" in line, line
