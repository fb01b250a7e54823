"""Shared pieces of telic's benchmarks: a figure, medians, and the disk's own fsync rate.

A benchmark group is a module ``bench/groups/<group>.py`` with ``GROUP = "<group>"`` and
``def collect(repeats: int) -> list[Figure]``. ``bench/run.py`` finds and runs them.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

Compare = Literal["<=", ">="]


@dataclass(frozen=True, slots=True)
class Figure:
    group: str
    name: str
    value: float
    unit: str
    target: float | None
    """The target value, or None for a reference figure (e.g. the disk's fsync rate)."""
    compare: Compare = "<="
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.value <= self.target if self.compare == "<=" else self.value >= self.target

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["met"] = self.met
        return out


def median(values: list[float]) -> float:
    return statistics.median(values)


def median_of(fn: Callable[[], float], repeats: int) -> float:
    """Median of ``repeats`` calls of ``fn`` (each returns one measurement)."""
    return median([fn() for _ in range(max(1, repeats))])


def timed(fn: Callable[[], object]) -> float:
    """Seconds ``fn`` takes, by ``time.perf_counter``."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def fdatasync_latency_us(samples: int = 300, directory: str | None = None) -> float:
    """Median latency of write(64 B) + fdatasync on the disk the ledgers use, in µs."""
    with tempfile.NamedTemporaryFile(dir=directory) as f:
        fd = f.fileno()
        lat: list[float] = []
        for _ in range(samples):
            t0 = time.perf_counter()
            os.write(fd, b"x" * 64)
            os.fdatasync(fd)
            lat.append(time.perf_counter() - t0)
    return median(lat) * 1e6


STEP_ROWS = 5
"""Records a no-op telic step commits (tick.started, proposal.made, proposal.accepted,
memory.updated, tick.completed)."""


def sqlite_step_us(
    samples: int = 300, directory: str | None = None, *, synchronous: str = "NORMAL"
) -> float:
    """Median latency of one plain ``sqlite3`` commit of a step's records with no kernel in
    it, in µs: :data:`STEP_ROWS` rows of 150 bytes, each with a SHA-256 of the previous hash
    and the row (the chain, computed in Python), and the head row moved, in one transaction
    (WAL, ``synchronous``). The least a step stored as hash-chained records can cost here:
    the floor under telic's step at the same ``synchronous``."""
    with tempfile.TemporaryDirectory(dir=directory) as d:
        db = sqlite3.connect(os.path.join(d, "step.db"), isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={synchronous}")
            db.execute(
                "CREATE TABLE t (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL, "
                "hash BLOB NOT NULL)"
            )
            db.execute("CREATE TABLE head (id INTEGER PRIMARY KEY, seq INTEGER, hash BLOB)")
            db.execute("INSERT INTO head VALUES (1, 0, x'00')")
            payload = b"x" * 150
            prev = bytes(32)
            seq = 0
            lat: list[float] = []
            for _ in range(samples + 20):
                t0 = time.perf_counter()
                rows: list[tuple[int, bytes, bytes]] = []
                for _ in range(STEP_ROWS):
                    seq += 1
                    prev = hashlib.sha256(prev + seq.to_bytes(8, "big") + payload).digest()
                    rows.append((seq, payload, prev))
                db.execute("BEGIN IMMEDIATE")
                db.execute("UPDATE head SET seq = ?, hash = ? WHERE id = 1", (seq, prev))
                db.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
                db.execute("COMMIT")
                lat.append(time.perf_counter() - t0)
        finally:
            db.close()
    return median(lat[20:]) * 1e6


def sqlite_commit_us(samples: int = 300, directory: str | None = None) -> float:
    """Median latency of one plain ``sqlite3`` durable commit of one 300-byte row (WAL,
    ``synchronous=FULL``) on the disk the ledgers use, in µs: the least a step committed
    through SQLite before the next can cost on this machine."""
    with tempfile.TemporaryDirectory(dir=directory) as d:
        db = sqlite3.connect(os.path.join(d, "floor.db"), isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
            row = b"x" * 300
            lat: list[float] = []
            for seq in range(samples + 20):
                t0 = time.perf_counter()
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT INTO t VALUES (?, ?)", (seq, row))
                db.execute("COMMIT")
                lat.append(time.perf_counter() - t0)
        finally:
            db.close()
    return median(lat[20:]) * 1e6
