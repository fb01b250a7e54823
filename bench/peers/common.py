"""What every worker shares (standard library only: it runs in telic's and the peers' venvs).

A worker runs one repetition of one workload for one system and prints one JSON object on its
last line of stdout. The workloads and their parameters are fixed here so that the three
workers cannot drift apart.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CHUNK_BYTES",
    "EFFECT_LATENCY_S",
    "Args",
    "Marks",
    "chunk",
    "db_bytes",
    "emit",
    "parse",
]

CHUNK_BYTES = 1024
"""What each step of the growing-state workload adds to the agent's memory."""

EFFECT_LATENCY_S = 0.002
"""In the crash workload, a step's side effect is a call that has happened (written to the
effects file) 2 ms before its result comes back, like a request to a remote API."""


def chunk(step: int) -> str:
    """The 1 KB value added at ``step`` (distinct per step, so nothing deduplicates it)."""
    return (f"{step:08d}" * (CHUNK_BYTES // 8))[:CHUNK_BYTES]


def db_bytes(*paths: Path) -> int:
    """Bytes on disk of SQLite databases after a full WAL checkpoint: file + WAL + journal.

    The checkpoint (TRUNCATE) runs on a separate connection, so the WAL is folded into the
    main file and emptied; what remains is what the data takes.
    """
    total = 0
    for path in paths:
        conn = sqlite3.connect(path)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            conn.close()
        for suffix in ("", "-wal", "-journal"):
            f = Path(f"{path}{suffix}")
            if f.exists():
                total += f.stat().st_size
    return total


class Marks:
    """Append-only line files that survive SIGKILL (each line is one unbuffered write)."""

    def __init__(self, path: str | None) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if path else None

    def mark(self, step: int) -> None:
        if self._fd is not None:
            os.write(self._fd, f"{step}\n".encode())

    @staticmethod
    def read(path: str) -> list[int]:
        p = Path(path)
        if not p.exists():
            return []
        return [int(line) for line in p.read_text().split() if line.strip()]


@dataclass(frozen=True, slots=True)
class Args:
    workload: str
    """``durable``, ``growing``, ``crash-run`` or ``crash-resume``."""
    dir: Path
    steps: int
    half: int
    fork_steps: int
    effects: str | None
    acks: str | None
    sync: str
    """SQLite ``synchronous`` for the durable workload: ``full`` (matched) or ``normal``."""


def parse(argv: list[str] | None = None) -> Args:
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", choices=["durable", "growing", "crash-run", "crash-resume"])
    ap.add_argument("--dir", type=Path, required=True, help="where the databases live")
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--half", type=int, default=0, help="growing: measure and fork here")
    ap.add_argument("--fork-steps", type=int, default=10)
    ap.add_argument("--effects", help="crash: the side-effect file")
    ap.add_argument("--acks", help="crash-run: one line per committed step")
    ap.add_argument("--sync", choices=["full", "normal"], default="full")
    ns = ap.parse_args(argv)
    ns.dir.mkdir(parents=True, exist_ok=True)
    return Args(ns.workload, ns.dir, ns.steps, ns.half, ns.fork_steps, ns.effects, ns.acks, ns.sync)


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)


def now() -> float:
    return time.perf_counter()
