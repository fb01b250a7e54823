from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Telic = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture
def telic(tmp_path: Path) -> Telic:
    """Run the real ``telic`` entry point (``python -m telic``) in a subprocess."""

    def run(
        *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "TELIC_DB": "", "COLUMNS": "200"}
        env.pop("TELIC_DB")
        proc = subprocess.run(
            [sys.executable, "-m", "telic", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=tmp_path,
            env=env,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"telic {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    return run


def last_run(telic: Telic, db: Path) -> dict[str, Any]:
    runs: list[dict[str, Any]] = json.loads(telic("runs", "--db", str(db), "--json").stdout)
    return runs[-1]
