"""The ledger's figures (issue 2), for the SQLite backend, each beside its target.

Disk-bound figures are printed beside the disk's own write+fdatasync latency, measured in the
same run on the same directory. Drafts are built from payload dicts with the canonical encoder
(``telic.canonical.encode``) inside the timed region; building pydantic payload models is the
caller's cost and is not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import os
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from harness import Figure, fdatasync_latency_us, median, median_of, percentile
from telic.canonical import ZERO_HASH, encode, sha256
from telic.ledger import AppendGroup, BaseLedger, GroupCommitter, SQLiteLedger, open_ledger
from telic.transition import SCHEMA_VERSION, Draft, record_body

GROUP = "ledger"

BIG = 1_000_000
"""Transitions in the big run (state_at, fork, size)."""
MID = 100_000
"""Transitions in the mid-size run (replay, verify, size)."""
BUILD_GROUP = 5_000

# Targets as ratios to references measured in the same run (issue 15): a slow hour moves the
# figure and its reference together.
GROUP_OVER_PLAIN = 0.5
"""Group commit: at least this fraction of plain SQLite inserting the same rows."""
REPLAY_OVER_READ = 0.5
"""Replay: at least this fraction of plain SQLite reading the rows back (issue 15). Printed
beside the floor: plain SQLite reading the same rows from the ledger's file, hashing each and
decoding its payload (:func:`_replay_floor`), the least any checked replay does."""
NORMAL_OVER_PLAIN = 2.0
"""A one-transition synchronous=normal append: at most this many plain one-row commits."""
FORK_OVER_FSYNC = 2.0
"""A fork (one durable commit): at most this many write+fdatasync."""
MANY_OVER_ONE = 0.5
"""100 runs at once: at least this fraction of one run's group commit."""
PG_OVER_SQLITE = 0.5
"""100 runs at once on PostgreSQL: at least this fraction of the same on SQLite."""
MANY_P99_OVER_FSYNC = 4.0
"""100 runs at once: commit latency p99 at most this many write+fdatasync."""


def _draft(i: int) -> Draft:
    """One transition of a plausible mix: observations, memory, plans, ticks."""
    agent = ("researcher", "planner", "budgeter")[i % 3]
    pick = i % 5
    if pick == 0:
        return Draft("tick.started", encode({"tick": i // 5}), 1_700_000_000_000_000 + i, i // 5)
    if pick == 1:
        payload = {"agent": agent, "source": "tool:search", "content": {"hit": i, "ok": True}}
        kind = "observation.recorded"
    elif pick == 2:
        payload = {"agent": agent, "key": f"note{i % 16}", "value": f"value {i}"}
        kind = "memory.updated"
    elif pick == 3:
        payload = {"agent": agent, "key": f"step{i % 8}", "value": {"n": i}}
        kind = "plan.updated"
    else:
        payload = {"sender": agent, "to": "planner", "content": f"message {i}"}
        kind = "message.sent"
    return Draft(kind, encode(payload), 1_700_000_000_000_000 + i, i // 5, agent, (i - 1,))


def _drafts(start: int, n: int) -> list[Draft]:
    return [_draft(i) for i in range(start, start + n)]


def _build(ledger: SQLiteLedger, run: str, n: int) -> int:
    """Append ``n`` transitions in big groups; the canonical payload bytes written."""
    ledger.create_run(run)
    payload = 0
    for start in range(1, n + 1, BUILD_GROUP):
        drafts = _drafts(start, min(BUILD_GROUP, n - start + 1))
        payload += sum(len(d.payload) for d in drafts)
        ledger.append(run, drafts)
    # Building leaves the kernel writing back hundreds of MB in the background, and every
    # fsync timed next would wait behind it: let it finish first.
    os.sync()
    return payload


def _bytes_on_disk(ledger: SQLiteLedger) -> int:
    """The database's size in pages in use (what a checkpoint leaves in the file)."""
    (count,), *_ = ledger.execute("PRAGMA page_count")
    (free,), *_ = ledger.execute("PRAGMA freelist_count")
    (size,), *_ = ledger.execute("PRAGMA page_size")
    assert isinstance(count, int)
    assert isinstance(free, int)
    assert isinstance(size, int)
    return (count - free) * size


def _latencies(ledger: BaseLedger, run: str, samples: int) -> list[float]:
    """Seconds per one-transition append (encode + hash + commit), ``samples`` times."""
    head = ledger.run(run).head
    out: list[float] = []
    perf = time.perf_counter
    for i in range(head + 1, head + 1 + samples):
        t0 = perf()
        ledger.append(run, [_draft(i)])
        out.append(perf() - t0)
    return out


def _paired(ledger: SQLiteLedger, run: str, samples: int, root: Path) -> tuple[float, float]:
    """Median µs of one-transition FULL appends, and of write+fdatasync measured just before
    and just after them, so that both see the same disk (other processes share it)."""
    before = fdatasync_latency_us(100, str(root))
    appends = median(_latencies(ledger, run, samples)) * 1e6
    after = fdatasync_latency_us(100, str(root))
    return appends, (before + after) / 2


def _group_rate(ledger: SQLiteLedger, run: str, groups: int, size: int) -> float:
    head = ledger.run(run).head
    t0 = time.perf_counter()
    for g in range(groups):
        start = head + 1 + g * size
        ledger.append(run, [_draft(i) for i in range(start, start + size)])
    return groups * size / (time.perf_counter() - t0)


MANY_RUNS = 100
"""Concurrent runs in one process for the group-commit-across-runs figures."""
MANY_TICKS = 40
TICK_SIZE = 5
"""Transitions a tick of a no-op agent commits (tick.started ... tick.completed)."""


@contextlib.contextmanager
def _full_collections() -> Iterator[list[float]]:
    """The pauses (s) of the garbage collector's full (generation 2) collections meanwhile:
    one lands in one commit round of the runs below, and every run of it waits."""
    pauses: list[float] = []
    started = [0.0]

    def watch(phase: str, info: dict[str, Any]) -> None:
        if info["generation"] == 2:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                pauses.append(time.perf_counter() - started[0])

    gc.callbacks.append(watch)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(watch)


class _Seq(NamedTuple):
    seq: int


class _FsyncOnly:
    """A stand-in for a ledger under :class:`GroupCommitter`: a commit writes 64 bytes and
    fdatasyncs them (in the committer's worker thread, as a real commit does) and numbers the
    groups, nothing else. 100 runs through it measure the floor of the commit latency: the
    event loop's own work (100 runs building their drafts), the thread hop and the fsync."""

    def __init__(self, path: Path) -> None:
        self.url = f"fsync-only://{path}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)

    def create_run(self, run_id: str) -> None:
        pass

    def append_groups(self, groups: list[AppendGroup]) -> list[list[_Seq]]:
        os.write(self._fd, b"x" * 64)
        os.fdatasync(self._fd)
        return [[_Seq((g.expected or 1) + i) for i in range(len(g.drafts))] for g in groups]

    def __enter__(self) -> _FsyncOnly:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)


def _many_runs(
    root: Path, shared: bool, ledger: BaseLedger | _FsyncOnly | None = None
) -> tuple[float, list[float], int, float]:
    """:data:`MANY_RUNS` runs in one process, each committing every tick (a group of
    :data:`TICK_SIZE` transitions) durably before its next, on one SQLite file: through one
    :class:`GroupCommitter` (``shared``: the runs' commits share an fsync) or each with its
    own ``append`` (an fsync each). Transitions/s in all, each commit's latency (s), the
    number of durable commits, and the mean seconds one shared commit took to write.
    ``ledger``: another backend to run it on (PostgreSQL), instead of a fresh SQLite file."""
    path = root / ("many-shared.db" if shared else "many-alone.db")
    ticks = MANY_TICKS if shared else MANY_TICKS // 8
    lat: list[float] = []
    perf = time.perf_counter
    with ledger or SQLiteLedger(path) as ledger:
        for r in range(MANY_RUNS):
            ledger.create_run(f"m{r}")

        async def one(commit: object, r: int) -> None:
            head = 0
            for _ in range(ticks):
                drafts = _drafts(head + 1, TICK_SIZE)
                t0 = perf()
                if isinstance(commit, GroupCommitter):
                    got = await commit.append(f"m{r}", drafts, expected=head + 1)
                else:
                    assert isinstance(ledger, BaseLedger)
                    got = ledger.append(f"m{r}", drafts, expected=head + 1)
                    await asyncio.sleep(0)  # the other runs go on between its commits
                lat.append(perf() - t0)
                head = got[-1].seq

        async def main() -> tuple[int, float]:
            if not shared:
                async with asyncio.TaskGroup() as tg:
                    for r in range(MANY_RUNS):
                        tg.create_task(one(None, r))
                return MANY_RUNS * ticks, 0.0
            async with GroupCommitter(ledger) as committer, asyncio.TaskGroup() as tg:  # type: ignore[arg-type]
                for r in range(MANY_RUNS):
                    tg.create_task(one(committer, r))
            return committer.commits, committer.writing_s / max(1, committer.commits)

        t0 = perf()
        commits, write_s = asyncio.run(main())
        elapsed = perf() - t0
    path.unlink(missing_ok=True)
    return MANY_RUNS * ticks * TICK_SIZE / elapsed, lat, commits, write_s


def _many_runs_postgres(root: Path) -> tuple[float, list[float], int, float] | None:
    """:func:`_many_runs`, shared, on the PostgreSQL at ``TELIC_PG_DSN`` (in a schema of its
    own, dropped after), or None without one."""
    dsn = os.environ.get("TELIC_PG_DSN")
    if not dsn:
        return None
    import psycopg
    from psycopg import sql

    from telic.ledger.postgres import PostgresLedger

    schema = f"telic_bench_{os.getpid()}"
    try:
        return _many_runs(root, True, PostgresLedger(dsn, schema=schema))
    finally:
        with psycopg.connect(dsn, autocommit=True) as db:
            db.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _fence_cost(ledger: BaseLedger, rounds: int, block: int) -> tuple[float, float]:
    """Median µs of one-transition appends to an unleased run and to a leased one (its lease
    checked in the append's transaction), in alternating blocks so both see the same load."""
    ledger.create_run("unleased")
    lease = ledger.leases.acquire("leased", "bench", ttl_s=3600)
    ledger.fence(lease)
    ledger.append("leased", _drafts(1, 1), create=True)
    free: list[float] = []
    fenced: list[float] = []
    for _ in range(rounds):
        free += _latencies(ledger, "unleased", block)
        fenced += _latencies(ledger, "leased", block)
    return median(free) * 1e6, median(fenced) * 1e6


def _raw_sqlite(root: Path) -> tuple[float, float, float, float]:
    """Plain SQLite on the same disk and rows, no telic: rows/s inserted 1,000 per FULL
    commit, rows/s read back, the median µs of one row (and a head update) per
    synchronous=normal commit, and rows/s inserted 1,000 per FULL commit by a loop that also
    does the least any chained ledger must do per row, in Python (:func:`_chained_rows`).
    How fast this machine is right now, for the figures below."""
    path = root / "raw.db"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(
            "CREATE TABLE t (rid INTEGER, seq INTEGER, tick INTEGER, agent TEXT, kind TEXT, "
            "causes TEXT, ts INTEGER, v INTEGER, payload BLOB, hash BLOB, "
            "PRIMARY KEY (rid, seq)) WITHOUT ROWID"
        )
        rows = [
            (1, i, d.tick, d.agent, d.kind, str(i - 1), d.ts, 1, d.payload, bytes(32))
            for i, d in enumerate(_drafts(1, 50_000), start=1)
        ]
        t0 = time.perf_counter()
        for k in range(0, len(rows), 1000):
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows[k : k + 1000]
            )
            db.execute("COMMIT")
        insert = len(rows) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        n = sum(1 for _ in db.execute("SELECT * FROM t WHERE rid = 1 ORDER BY seq"))
        read = n / (time.perf_counter() - t0)
        db.execute("DELETE FROM t")
        t0 = time.perf_counter()
        prev = ZERO_HASH
        for k in range(1, len(rows) + 1, 1000):
            chained, prev = _chained_rows(k, 1000, prev)
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", chained)
            db.execute("COMMIT")
        chain = len(rows) / (time.perf_counter() - t0)
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE runs (rid INTEGER PRIMARY KEY, head INTEGER, head_hash BLOB)")
        db.execute("INSERT INTO runs VALUES (1, 0, x'00')")
        db.execute("DELETE FROM t")
        lat: list[float] = []
        for row in rows[:3500]:
            t0 = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "UPDATE runs SET head = ?, head_hash = ? WHERE rid = 1 AND head = ?",
                (row[1], row[9], row[1] - 1),
            )
            db.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            db.execute("COMMIT")
            lat.append(time.perf_counter() - t0)
        one = median(lat[1500:]) * 1e6
    finally:
        db.close()
        path.unlink()
    return insert, read, one, chain


def _chained_rows(start: int, n: int, prev: bytes) -> tuple[list[tuple[object, ...]], bytes]:
    """The rows of drafts ``start..start+n-1`` as the group-commit figure builds them (payloads
    encoded), each with its record body and SHA-256 chain hash: no checks, no validation, no
    state, no snapshots. The floor a hash-chained ledger in Python sits on."""
    out: list[tuple[object, ...]] = []
    for seq in range(start, start + n):
        d = _draft(seq)
        body = record_body(seq, d.tick, d.agent, d.kind, d.causes, d.ts, SCHEMA_VERSION, d.payload)
        prev = sha256(prev + body).digest()
        out.append((1, seq, d.tick, d.agent, d.kind, str(seq - 1), d.ts, 1, d.payload, prev))
    return out, prev


def _replay_floor(path: Path, n: int) -> float:
    """Rows/s of the least a checked replay of the ledger at ``path`` does, without telic:
    plain SQLite reading its ``n`` rows of run 1 in pages of 4,096 (as the ledger reads them),
    a SHA-256 of each row's previous hash and payload (a record body is its payload and about
    100 bytes more) and a decode of each payload. No fold, no record encoding, no checks."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        sha = hashlib.sha256
        loads = orjson.loads
        base = 1 << 36
        t0 = time.perf_counter()
        prev = bytes(32)
        start, seen = 1, 0
        while True:
            rows = db.execute(
                "SELECT seq, tick, agent, kind, causes, ts, v, payload, hash FROM transitions "
                "WHERE key >= ? AND key <= ? ORDER BY key LIMIT 4096",
                (base | start, base | n),
            ).fetchall()
            for row in rows:
                payload = row[7]
                sha(prev + payload).digest()
                loads(payload)
                prev = row[8]
            seen += len(rows)
            if len(rows) < 4096:
                break
            start = rows[-1][0] + 1
        took = time.perf_counter() - t0
    finally:
        db.close()
    assert seen == n, seen
    return n / took


def _rate(n: int, fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return n / (time.perf_counter() - t0)


def _state_at_worst_ms(ledger: SQLiteLedger, run: str, rng: random.Random) -> float:
    """The slowest of state_at at 20 random points and 10 just before a snapshot."""
    k = ledger.snapshot_every
    points = [rng.randint(1, BIG - 1) for _ in range(20)]
    points += [rng.randint(1, BIG // k - 1) * k - 1 for _ in range(10)]
    worst = 0.0
    for seq in points:
        t0 = time.perf_counter()
        ledger.state_at(run, seq)
        worst = max(worst, time.perf_counter() - t0)
    return worst * 1e3


def _fork_ms(
    ledger: SQLiteLedger, run: str, rng: random.Random, names: Iterator[str], n: int
) -> float:
    """Median of ``n`` forks at random points before the head."""
    head = ledger.run(run).head
    lat: list[float] = []
    for _ in range(n):
        at = rng.randint(1, head - 1)
        t0 = time.perf_counter()
        ledger.fork(run, at, next(names))
        lat.append(time.perf_counter() - t0)
    return median(lat) * 1e3


def collect(repeats: int) -> list[Figure]:
    root = Path(tempfile.mkdtemp(prefix="telic-bench-ledger-"))
    try:
        return _collect(root, repeats)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _collect(root: Path, repeats: int) -> list[Figure]:
    rng = random.Random(2)
    figures: list[Figure] = []

    def fig(
        name: str,
        value: float,
        unit: str,
        target: float | None,
        compare: str = "<=",
        note: str = "",
    ) -> None:
        figures.append(Figure(GROUP, name, value, unit, target, compare, note))  # type: ignore[arg-type]

    fsync_us = median_of(lambda: fdatasync_latency_us(300, str(root)), repeats)
    fig("disk: write(64 B) + fdatasync, median", fsync_us, "µs", None)
    raw = [_raw_sqlite(root) for _ in range(max(1, repeats // 2))]
    fig(
        "machine: plain SQLite, 1,000 rows per FULL commit",
        median([r[0] for r in raw]),
        "rows/s",
        None,
        note="reference: no telic",
    )
    plain_one = median([r[2] for r in raw])
    chained_rows = median([r[3] for r in raw])
    fig(
        "floor: plain SQLite, 1,000 rows per FULL commit, drafts encoded and SHA-256 chained",
        chained_rows,
        "rows/s",
        None,
        note=f"{chained_rows / median([r[0] for r in raw]):.2f}x plain; the group commit's drafts, "
        "record bodies and chain in Python, no checks or state",
    )
    fig(
        "machine: plain SQLite, 1 row per synchronous=normal commit, median",
        plain_one,
        "µs",
        None,
        note="reference: no telic",
    )
    fig(
        "machine: plain SQLite, reading rows back",
        median([r[1] for r in raw]),
        "rows/s",
        None,
        note="reference: no telic",
    )

    with SQLiteLedger(root / "full.db") as full:
        full.create_run("one")
        # A fresh WAL file grows with every commit, and on this file system an fdatasync that
        # also grows the file costs about twice as much; once SQLite has checkpointed it
        # reuses the file. Time both: the first 300 commits and the steady state.
        growing = median(_latencies(full, "one", 300)) * 1e6
        fig(
            "append 1 transition per FULL commit, median, fresh WAL",
            growing,
            "µs",
            None,
            note=f"{growing / fsync_us:.2f}x fdatasync; first 300 commits after opening",
        )
        _latencies(full, "one", 1500)  # past the first checkpoint: the WAL is reused
        pairs = [_paired(full, "one", 300, root) for _ in range(max(1, repeats))]
        one = median([p[0] for p in pairs])
        beside = median([p[1] for p in pairs])
        fig(
            "disk: write(64 B) + fdatasync, median, just before and after the appends below",
            beside,
            "µs",
            None,
        )
        fig(
            "append 1 transition per FULL commit, median",
            one,
            "µs",
            1.5 * beside,
            note=f"1.5x the fdatasync beside it; {one / beside:.2f}x",
        )
        full.create_run("groups")
        full.append("groups", _drafts(1, 10))
        rate = median_of(lambda: _group_rate(full, "groups", 20, 1000), repeats)
        plain_rows = median([r[0] for r in raw])
        fig(
            "group commit, 1,000 transitions per FULL commit",
            rate,
            "tr/s",
            GROUP_OVER_PLAIN * plain_rows,
            ">=",
            note=f"{GROUP_OVER_PLAIN}x plain SQLite's 1,000-row commits beside it; "
            f"{rate / plain_rows:.2f}x; {rate / chained_rows:.2f}x the chained floor",
        )

    # Many runs at once: 100 runs in one process, each committing every tick durably.
    alone = [_many_runs(root, shared=False) for _ in range(max(1, repeats // 2))]
    # The floor in the same rounds, alternating with the real thing: the same runs through the
    # same committer, whose commits only fsync (no telic work in the writer thread).
    together: list[tuple[float, list[float], int, float]] = []
    bare: list[tuple[float, list[float], int, float]] = []
    full_gc: list[float] = []
    for _ in range(max(1, repeats // 2)):
        with _full_collections() as pauses:
            together.append(_many_runs(root, shared=True))
        full_gc += pauses
        bare.append(_many_runs(root, shared=True, ledger=_FsyncOnly(root / "fsync-only")))
    fsync_many = fdatasync_latency_us(300, str(root))
    fig(
        "disk: write(64 B) + fdatasync, median, beside the many-runs figures",
        fsync_many,
        "µs",
        None,
    )
    alone_rate = median([a[0] for a in alone])
    fig(
        f"{MANY_RUNS} runs, each its own FULL commit per tick ({TICK_SIZE} tr)",
        alone_rate,
        "tr/s",
        None,
        note="reference: no sharing, one fsync a commit",
    )
    rate_many = median([t[0] for t in together])
    fig(
        f"{MANY_RUNS} runs at once, commits shared (GroupCommitter), aggregate",
        rate_many,
        "tr/s",
        MANY_OVER_ONE * rate,
        ">=",
        note=f"{rate_many / rate:.2f}x one run's group commit ({rate:,.0f} tr/s); "
        f"{rate_many / alone_rate:.1f}x unshared; "
        f"{median([MANY_RUNS * MANY_TICKS / t[2] for t in together]):.0f} ticks a commit",
    )
    on_pg = _many_runs_postgres(root)
    if on_pg is None:
        fig(
            f"{MANY_RUNS} runs at once on PostgreSQL, commits shared, aggregate",
            float("nan"),
            "tr/s",
            None,
            note="not measured: set TELIC_PG_DSN",
        )
    else:
        from telic.ledger.postgres import DEFAULT_CONNECTIONS

        fig(
            f"{MANY_RUNS} runs at once on PostgreSQL, commits shared, aggregate",
            on_pg[0],
            "tr/s",
            PG_OVER_SQLITE * rate_many,
            ">=",
            note=f"{PG_OVER_SQLITE}x SQLite's shared figure above; {on_pg[0] / rate_many:.2f}x; "
            f"{DEFAULT_CONNECTIONS} connections, a commit's groups split over them",
        )
    p99 = median([percentile(t[1], 99) for t in together]) * 1e6
    p50 = median([percentile(t[1], 50) for t in together]) * 1e6
    floor99 = median([percentile(t[1], 99) for t in bare]) * 1e6
    fig(
        f"floor: {MANY_RUNS} runs at once, commits that only fsync, commit latency p99",
        floor99,
        "µs",
        None,
        note=f"{floor99 / fsync_many:.1f}x the fdatasync beside it; p50 "
        f"{median([percentile(t[1], 50) for t in bare]) * 1e6:,.0f} µs; the same runs and "
        "GroupCommitter, a commit = write(64 B) + fdatasync in its thread",
    )
    fig(
        f"{MANY_RUNS} runs at once, commit latency p99",
        p99,
        "µs",
        MANY_P99_OVER_FSYNC * fsync_many,
        note=f"{MANY_P99_OVER_FSYNC:g}x the fdatasync beside it; {p99 / fsync_many:.1f}x; "
        f"{p99 / floor99:.1f}x the fsync-only floor above; p50 {p50:,.0f} µs; one "
        f"shared commit takes {median([t[3] for t in together]) * 1e6:,.0f} µs to write "
        f"({MANY_RUNS * TICK_SIZE} transitions), and a run waits for up to two; "
        f"{len(full_gc)} full GC pause(s) in these runs, the longest "
        f"{max(full_gc, default=0) * 1e3:,.0f} ms",
    )

    with SQLiteLedger(root / "normal.db", synchronous="normal") as normal:
        normal.create_run("one")
        _latencies(normal, "one", 1500)
        one_normal = median_of(lambda: median(_latencies(normal, "one", 2000)) * 1e6, repeats)
        fig(
            "append 1 transition per synchronous=normal commit, median",
            one_normal,
            "µs",
            NORMAL_OVER_PLAIN * plain_one,
            note=f"{NORMAL_OVER_PLAIN}x plain SQLite's one-row commit; {one_normal / plain_one:.2f}x",
        )

    with SQLiteLedger(root / "fence.db", synchronous="normal") as fence:
        fence.create_run("warm")
        _latencies(fence, "warm", 1500)
        free, fenced = _fence_cost(fence, max(4, repeats * 2), 500)
        fig("append 1 transition, unleased run, synchronous=normal, median", free, "µs", None)
        fig(
            "append 1 transition, leased run (fence checked), synchronous=normal, median",
            fenced,
            "µs",
            1.1 * free,
            note=f"{fenced / free:.2f}x the unleased append beside it (target 1.1x)",
        )
    dsn = os.environ.get("TELIC_PG_DSN")
    if dsn:
        from telic.ledger.postgres import PostgresLedger

        schema = f"telic_bench_{os.getpid()}"
        with open_ledger(f"{dsn}?schema={schema}") as pg:
            assert isinstance(pg, PostgresLedger)
            try:
                pg.create_run("warm")
                _latencies(pg, "warm", 300)
                free, fenced = _fence_cost(pg, max(4, repeats * 2), 200)
                fig("PostgreSQL: append 1 transition, unleased run, median", free, "µs", None)
                fig(
                    "PostgreSQL: append 1 transition, leased run (lease row FOR SHARE), median",
                    fenced,
                    "µs",
                    1.2 * free,
                    note=f"{fenced / free:.2f}x the unleased append beside it (target 1.2x)",
                )
            finally:
                pg.execute(f'DROP SCHEMA "{schema}" CASCADE')

    with SQLiteLedger(root / "mid.db") as mid:
        base = _bytes_on_disk(mid)
        payload = _build(mid, "r", MID)
        per = (_bytes_on_disk(mid) - base - payload) / MID
        fig(f"on-disk bytes per transition beyond payload, {MID:,} run", per, "B", 120)
        replay = median_of(lambda: _rate(MID, lambda: mid.replay("r")), repeats)
        floor = median_of(lambda: _replay_floor(mid.path, MID), repeats)
        plain_read = median([r[1] for r in raw])
        fig(
            f"machine: plain SQLite reading the {MID:,} run's rows + SHA-256 + decode each",
            floor,
            "rows/s",
            None,
            note=f"reference: the floor of a checked replay, no telic; "
            f"{floor / plain_read:.2f}x plain SQLite's read rows/s",
        )
        fig(
            f"replay (fold + hash checks) of a {MID:,} run",
            replay,
            "tr/s",
            REPLAY_OVER_READ * plain_read,
            ">=",
            note=f"{REPLAY_OVER_READ:.2g}x plain SQLite's read rows/s; {replay / plain_read:.2f}x "
            f"(the floor beside it: {floor / plain_read:.2f}x; replay is {replay / floor:.2f}x "
            "the floor)",
        )
        verify = median_of(lambda: _rate(MID, lambda: mid.verify("r")), repeats)
        fig(
            f"verify (recompute the chain) of a {MID:,} run",
            verify,
            "tr/s",
            replay,
            ">=",
            note="target: the replay rate",
        )

    with SQLiteLedger(root / "big.db") as big:
        base = _bytes_on_disk(big)
        t0 = time.perf_counter()
        payload = _build(big, "r", BIG)
        build = time.perf_counter() - t0
        per = (_bytes_on_disk(big) - base - payload) / BIG
        fig(
            f"on-disk bytes per transition beyond payload, {BIG:,} run",
            per,
            "B",
            120,
            note=f"built in {build:.1f} s",
        )
        worst = median_of(lambda: _state_at_worst_ms(big, "r", rng), repeats)
        fig(f"state_at, worst of 30 points in a {BIG:,} run", worst, "ms", 50)
        names = (f"fork{i}" for i in range(1_000_000))
        _build(big, "small", 1_000)
        for label, run in (("1,000", "small"), (f"{BIG:,}", "r")):
            before = fdatasync_latency_us(100, str(root))
            took = median_of(lambda run=run: _fork_ms(big, run, rng, names, 20), repeats)
            sync_us = (before + fdatasync_latency_us(100, str(root))) / 2
            fig(
                f"fork a {label}-transition run at a random point, median",
                took,
                "ms",
                FORK_OVER_FSYNC * sync_us / 1e3,
                note=f"one durable commit: {took * 1e3 / sync_us:.2f}x the fdatasync "
                f"beside it ({sync_us:,.0f} µs; target {FORK_OVER_FSYNC}x)",
            )
    return figures
