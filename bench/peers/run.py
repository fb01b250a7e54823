"""telic side by side with LangGraph and DBOS: ``python bench/peers/run.py [--json] [--quick]``.

Creates ``bench/.peers-venv`` with the pinned peers (``requirements.txt`` here) the first time,
then runs four workloads on each system, one process per repetition, alternating the systems
within each repetition (the order rotates), and prints one row per figure: each system's
median and telic's ratio to each peer, beside the target of issue 7. ``--json`` prints one
JSON object instead. See ``docs/benchmarks.md`` for the method.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import importlib.metadata
import json
import os
import platform
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
VENV = BENCH / ".peers-venv"
REQUIREMENTS = HERE / "requirements.txt"
SYSTEMS = ("telic", "langgraph", "dbos")
PEERS = SYSTEMS[1:]

sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(HERE))

from common import Marks  # noqa: E402

from harness import STEP_ROWS, fdatasync_latency_us, sqlite_commit_us, sqlite_step_us  # noqa: E402


@dataclass(frozen=True, slots=True)
class Plan:
    repeats: int
    durable_steps: int
    grow_steps: int
    grow_half: int
    fork_steps: int
    crash_steps: int
    crash_trials: int


LINEAR = 1.25
"""Growth counts as linear when the second half adds at most 25% more than the first."""

FULL = Plan(repeats=5, durable_steps=1000, grow_steps=400, grow_half=200, fork_steps=10,
            crash_steps=1000, crash_trials=3)  # fmt: skip
QUICK = Plan(repeats=1, durable_steps=300, grow_steps=200, grow_half=100, fork_steps=10,
             crash_steps=300, crash_trials=1)  # fmt: skip


# -- the peers' venv ---------------------------------------------------------------------


def _venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_venv(log: Callable[[str], None]) -> Path:
    """Create (or refresh, if the pins changed) the peers' venv; its python."""
    pins = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = VENV / "pins.sha256"
    python = _venv_python()
    if python.exists() and stamp.exists() and stamp.read_text() == pins:
        return python
    log(f"creating {VENV.relative_to(BENCH.parent)} with the pinned peers ...")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-r", str(REQUIREMENTS)],
        capture_output=True, text=True,
    )  # fmt: skip
    if pip.returncode != 0:
        raise RuntimeError(f"installing the peers failed:\n{pip.stdout}{pip.stderr}")
    stamp.write_text(pins)
    return python


# -- running workers -----------------------------------------------------------------------


@dataclass
class Workers:
    peers_python: Path
    root: Path
    log: Callable[[str], None]
    _n: int = 0

    def command(self, system: str, workload: str, *args: str) -> list[str]:
        python = sys.executable if system == "telic" else str(self.peers_python)
        return [python, str(HERE / f"{system}_worker.py"), workload, *args]

    def fresh_dir(self, system: str) -> Path:
        self._n += 1
        path = self.root / f"{self._n:03d}-{system}"
        path.mkdir()
        return path

    def run(self, system: str, workload: str, *args: str, timeout: float = 300) -> dict[str, Any]:
        proc = subprocess.run(
            self.command(system, workload, *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=HERE,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{system} {workload} failed:\n{proc.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return result


def durable(w: Workers, system: str, plan: Plan, sync: str = "full") -> dict[str, Any]:
    d = w.fresh_dir(system)
    steps = str(plan.durable_steps)
    return w.run(system, "durable", "--dir", str(d), "--steps", steps, "--sync", sync)


def growing(w: Workers, system: str, plan: Plan) -> dict[str, Any]:
    d = w.fresh_dir(system)
    return w.run(
        system, "growing", "--dir", str(d), "--steps", str(plan.grow_steps),
        "--half", str(plan.grow_half), "--fork-steps", str(plan.fork_steps),
    )  # fmt: skip


def crash(w: Workers, system: str, plan: Plan, rng: random.Random) -> dict[str, Any]:
    """SIGKILL the worker at a random step, resume it in a new process, count the damage.

    ``acked`` is the last step the worker said was committed before it died; ``lost`` is how
    many of those the resumed system no longer has; ``twice`` counts steps whose side effect
    ran more than once.
    """
    d = w.fresh_dir(system)
    effects, acks = d / "effects", d / "acks"
    steps = str(plan.crash_steps)
    kill_at = rng.randint(plan.crash_steps // 10, plan.crash_steps * 9 // 10)
    proc = subprocess.Popen(
        w.command(system, "crash-run", "--dir", str(d), "--steps", steps,
                  "--effects", str(effects), "--acks", str(acks)),
        cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while _lines(effects) < kill_at and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.0005)
    time.sleep(rng.uniform(0, 0.005))  # anywhere within the next step or two
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    acked = max(Marks.read(str(acks)), default=0)
    ran = len(Marks.read(str(effects)))
    resumed = w.run(system, "crash-resume", "--dir", str(d), "--steps", steps,
                    "--effects", str(effects))  # fmt: skip
    counts = collections.Counter(Marks.read(str(effects)))
    return {
        "killed_after_effects": ran,
        "acked": acked,
        "recovered": resumed["recovered"],
        "lost": max(0, acked - int(resumed["recovered"])),
        "twice": sum(1 for c in counts.values() if c > 1),
        "unknown": resumed["unknown"],
        "never_ran": plan.crash_steps - len(counts),
        "completed": resumed["done"] == plan.crash_steps,
    }


def _lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


# -- figures ---------------------------------------------------------------------------------


@dataclass
class Figure:
    workload: str
    name: str
    unit: str
    runs: dict[str, list[float]] = field(default_factory=dict[str, list[float]])
    target: dict[str, float] = field(default_factory=dict[str, float])
    """Per peer: the largest telic/peer ratio that meets the target."""
    telic_at_most: float | None = None
    """A target on telic's own median (e.g. growth that stays linear)."""

    def median(self, system: str) -> float | None:
        values = self.runs.get(system)
        return statistics.median(values) if values else None

    def ratio(self, peer: str) -> float | None:
        t, p = self.median("telic"), self.median(peer)
        if t is None or p is None or p == 0:
            return None
        return t / p

    def met(self, peer: str) -> bool | None:
        if peer not in self.target:
            return None
        r = self.ratio(peer)
        return None if r is None else r <= self.target[peer]

    def own_met(self) -> bool | None:
        t = self.median("telic")
        if self.telic_at_most is None or t is None:
            return None
        return t <= self.telic_at_most

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "name": self.name,
            "unit": self.unit,
            "median": {s: self.median(s) for s in SYSTEMS},
            "runs": self.runs,
            "telic_ratio": {p: self.ratio(p) for p in PEERS},
            "target_ratio_at_most": self.target,
            "met": {p: self.met(p) for p in self.target},
            "telic_at_most": self.telic_at_most,
            "telic_met": self.own_met(),
        }


STEP_OVER_COMMIT = 1.5
"""Issue 15: a durable step costs at most this many bare SQLite durable commits (same run)."""
STATE_OVER_DECODE = 2.0
"""Issue 15: the state as of a step costs at most this many decodes of that state's JSON."""


def build_figures(
    results: dict[str, dict[str, list[dict[str, Any]]]], floors: dict[str, float]
) -> list[Figure]:
    """The figures, with issue 15's targets: ratios to the peers, or to the floors measured
    in the same run (``sqlite_commit_us``, ``decode_half_ms``)."""

    def fig(workload: str, name: str, unit: str,
            key: Callable[[dict[str, Any]], float | None],
            target: dict[str, float] | None = None, telic_at_most: float | None = None,
            ) -> Figure:  # fmt: skip
        f = Figure(workload, name, unit, target=target or {}, telic_at_most=telic_at_most)
        for system, runs in results[workload].items():
            values = [v for v in map(key, runs) if v is not None]  # None: not measured there
            if values:
                f.runs[system] = values
        return f

    mb = 1024 * 1024
    return [
        fig("durable", "durable step", "us/step", lambda r: r["us_per_step"],
            telic_at_most=STEP_OVER_COMMIT * floors["sqlite_commit_us"]),
        fig("durable-normal", "step, synchronous=NORMAL (no fsync)", "us/step",
            lambda r: r["us_per_step"], {"langgraph": 1 / 8}),
        fig("growing", "bytes on disk at half", "MB", lambda r: r["bytes_half"] / mb),
        fig("growing", "bytes on disk at end", "MB", lambda r: r["bytes_full"] / mb,
            {"langgraph": 1 / 10}),
        fig("growing", "growth, 2nd half / 1st half", "x",
            lambda r: (r["bytes_full"] - r["bytes_half"]) / (r["bytes_half"] - r["bytes_0"]),
            telic_at_most=LINEAR),
        fig("growing", "read current state at end", "ms", lambda r: r["state_now_s"] * 1e3),
        fig("growing", "state as of half (time travel)", "ms",
            lambda r: r["state_half_s"] * 1e3,
            telic_at_most=STATE_OVER_DECODE * floors["decode_half_ms"]),
        fig("growing", "state as of any step from half, worst / its decode", "x",
            lambda r: r.get("state_any_worst_over_decode"),
            telic_at_most=STATE_OVER_DECODE),
        fig("growing", FETCH_FLOOR, "x", lambda r: r.get("state_any_worst_fetch_over_decode")),
        fig("growing", OVER_FETCH_FLOOR, "x", lambda r: r.get("state_any_worst_over_fetch")),
        fig("growing", "fork at half + 10 steps (time travel)", "ms",
            lambda r: r["fork_s"] * 1e3, {"langgraph": 1 / 5}),
    ]  # fmt: skip


def crash_summary(results: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for system, trials in results.items():
        out[system] = {
            "trials": len(trials),
            "lost": sum(t["lost"] for t in trials),
            "twice": sum(t["twice"] for t in trials),
            "unknown": sum(t["unknown"] for t in trials),
            "never_ran": sum(t["never_ran"] for t in trials),
            "completed": all(t["completed"] for t in trials),
            "detail": trials,
        }
    telic = out.get("telic")
    if telic is not None:
        telic["met"] = telic["lost"] == 0 and telic["twice"] == 0 and telic["completed"]
    return out


# -- printing --------------------------------------------------------------------------------


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.3g}"


def _vs(f: Figure, peer: str) -> str:
    r = f.ratio(peer)
    if r is None:
        return "-"
    text = f"{1 / r:.2g}x faster" if f.unit in ("us/step", "ms") and r < 1 else f"{r:.2g}"
    if f.unit in ("us/step", "ms") and r >= 1:
        text = f"{r:.2g}x slower"
    if f.unit == "MB":
        text = f"{r:.3f} of it"
    met = f.met(peer)
    if met is not None:
        text += f" ({'met' if met else 'MISSED'}: <= {f.target[peer]:.3g})"
    return text


NOTES = (
    "durability: every system commits each step before the next, SQLite synchronous=FULL: "
    "telic WAL, one group commit per tick; LangGraph SqliteSaver WAL, durability='sync' "
    "(two commits per step: writes, then checkpoint); DBOS rollback journal (its default), "
    "one step-output commit per step plus its workflow bookkeeping",
    "synchronous=NORMAL row: telic and LangGraph without an fsync per commit (survives a "
    "process crash, not power loss), i.e. the CPU cost of a step; DBOS not matched (it opens "
    "its own connections)",
    "bytes: database file + WAL (+ journal) after a TRUNCATE checkpoint; telic's include "
    "its state snapshots (by count, every 1,000 transitions, and by bytes: once the payloads "
    "since the last reach 25% of its size, at least 16 KiB, while the state grows)",
    "reads: telic ledger.state_at on a freshly opened ledger; LangGraph get_state on a fresh "
    "connection; DBOS list_workflow_steps (no point-in-time state: the recorded step outputs "
    "up to the step, limit=N)",
    "fork: telic Kernel.fork + Kernel.resume + 10 Run.step; LangGraph update_state at the "
    "step-200 checkpoint + invoke(None); DBOS fork_workflow(start_step) on a queue polled "
    "every 10 ms, stopping after 10 new steps (a fork keeps its arguments)",
    "crash: a step's side effect is written 2 ms before its result returns; telic records an "
    "interrupted non-idempotent call as unknown (at most once), the peers run it again",
)


def print_table(
    figures: list[Figure], crashes: dict[str, dict[str, Any]], plan: Plan, out: TextIO
) -> None:
    head = f"{'figure':<42} {'unit':<8}" + "".join(f"{s:>12}" for s in SYSTEMS)
    head += f"   {'telic vs langgraph':<34} telic vs dbos"
    print(head, file=out)
    print("-" * len(head), file=out)
    for f in figures:
        row = f"{f.name:<42} {f.unit:<8}" + "".join(f"{_num(f.median(s)):>12}" for s in SYSTEMS)
        own = f.own_met()
        mark = (
            ""
            if own is None
            else f"  telic {'met' if own else 'MISSED'}: <= {f.telic_at_most:,.4g}"
        )
        print(f"{row}   {_vs(f, 'langgraph'):<34} {_vs(f, 'dbos')}{mark}", file=out)
    print(file=out)
    print(
        f"crash ({plan.crash_trials} SIGKILL(s) per system, {plan.crash_steps} steps each):",
        file=out,
    )
    for s in SYSTEMS:
        c = crashes.get(s)
        if c is None:
            continue
        verdict = "" if "met" not in c else ("  met" if c["met"] else "  MISSED")
        print(
            f"  {s:<10} lost committed steps {c['lost']}, side effects run twice {c['twice']}, "
            f"outcome recorded unknown {c['unknown']}, effects never run {c['never_ran']}, "
            f"finished {'yes' if c['completed'] else 'NO'}{verdict}",
            file=out,
        )
    print(file=out)
    for note in NOTES:
        print(f"- {note}", file=out)


FETCH_FLOOR = "floor: fetch + decode of its snapshot, fresh connection / decode"
"""The least a read of a state stored in SQLite costs, over the decode the target is set
against (at the worst point of the row above): fetching the nearest snapshot's bytes with
plain ``sqlite3`` on a freshly opened connection, and decoding them."""
OVER_FETCH_FLOOR = "state as of any step from half, worst / that floor"


def _floor_ratios(figures: list[Figure], floors: dict[str, float]) -> dict[str, float | None]:
    """telic's figures over the floors measured beside them (issue 15's targets)."""
    by_name = {f.name: f for f in figures}
    step = by_name["durable step"].median("telic")
    half = by_name["state as of half (time travel)"].median("telic")
    anywhere = by_name["state as of any step from half, worst / its decode"].median("telic")
    normal = by_name["step, synchronous=NORMAL (no fsync)"].median("telic")
    return {
        "durable_step_over_sqlite_commit": None
        if step is None
        else step / floors["sqlite_commit_us"],
        "durable_step_over_sqlite_commit_target": STEP_OVER_COMMIT,
        "state_half_over_decode": None if half is None else half / floors["decode_half_ms"],
        "state_half_over_decode_target": STATE_OVER_DECODE,
        "state_any_worst_over_decode": anywhere,
        "state_any_fetch_floor_over_decode": by_name[FETCH_FLOOR].median("telic"),
        "state_any_worst_over_fetch_floor": by_name[OVER_FETCH_FLOOR].median("telic"),
        "durable_step_over_step_records_full": None
        if step is None
        else step / floors["step_records_full_us"],
        "normal_step_over_step_records_normal": None
        if normal is None
        else normal / floors["step_records_normal_us"],
    }


def print_floors(
    figures: list[Figure],
    floors: dict[str, float],
    telic_growing: list[dict[str, Any]],
    out: TextIO,
) -> None:
    """What the targets ask beside the least any system can do on this machine."""
    commit_us = floors["sqlite_commit_us"]
    by_name = {f.name: f for f in figures}
    step_t = by_name["durable step"].median("telic")
    if step_t is not None:
        print(
            f"- durable step / one bare SQLite durable commit: {step_t / commit_us:.2f}x "
            f"(target <= {STEP_OVER_COMMIT}x: {STEP_OVER_COMMIT * commit_us:,.0f} us)",
            file=out,
        )
    step = by_name["durable step"]
    lg, dbos = step.median("langgraph"), step.median("dbos")
    if lg is not None and dbos is not None:
        print(
            f"- floor, durable step: one plain SQLite durable commit takes {commit_us:,.0f} us "
            f"here; 4x faster than LangGraph is {lg / 4:,.0f} us a step, 8x faster than DBOS "
            f"{dbos / 8:,.0f} us",
            file=out,
        )
    normal = by_name["step, synchronous=NORMAL (no fsync)"]
    full_t, normal_t, normal_lg = step_t, normal.median("telic"), normal.median("langgraph")
    if full_t is not None and normal_t is not None and normal_lg is not None:
        rec_full, rec_normal = floors["step_records_full_us"], floors["step_records_normal_us"]
        print(
            f"- floor, a step's records with no kernel ({STEP_ROWS} rows of 150 B, SHA-256 "
            f"chained in Python, the head moved, one plain SQLite commit): FULL "
            f"{rec_full:,.0f} us (telic's durable step {full_t / rec_full:.2f}x it), NORMAL "
            f"{rec_normal:,.0f} us (telic's NORMAL step {normal_t / rec_normal:.2f}x it; the "
            f"target, 1/8 of LangGraph's, is {normal_lg / 8:,.0f} us)",
            file=out,
        )
    decode = [r["decode_half_s"] * 1e3 for r in telic_growing if "decode_half_s" in r]
    read = by_name["state as of half (time travel)"].median("langgraph")
    if decode and read is not None:
        print(
            f"- floor, state as of half: decoding that state's JSON alone (orjson) takes "
            f"{statistics.median(decode):.3f} ms (target: telic's read <= "
            f"{STATE_OVER_DECODE}x that); 5x faster than LangGraph's read is {read / 5:.3f} ms",
            file=out,
        )
    parts = fork_parts_ms(telic_growing)
    if parts:
        print(
            "- telic's fork at half + 10 steps, its parts (medians): "
            + ", ".join(f"{k} {v:.2f} ms" for k, v in parts.items())
            + " (Kernel.fork: one append; Kernel.resume: check, state, agents, one commit; "
            "the durable steps)",
            file=out,
        )


def fork_parts_ms(telic_growing: list[dict[str, Any]]) -> dict[str, float]:
    """The medians of telic's fork parts (``fork``, ``resume``, ``steps``) in ms."""
    runs = [r["fork_parts_s"] for r in telic_growing if "fork_parts_s" in r]
    if not runs:
        return {}
    return {k: statistics.median(r[k] for r in runs) * 1e3 for k in runs[0]}


# -- main ------------------------------------------------------------------------------------


def versions(peers_python: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(peers_python), "-c",
         "import importlib.metadata as m; print(' '.join(m.version(p) for p in "
         "('langgraph', 'langgraph-checkpoint-sqlite', 'dbos')))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return {
        "telic": importlib.metadata.version("telic"),
        "langgraph": out[0],
        "langgraph-checkpoint-sqlite": out[1],
        "dbos": out[2],
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--quick", action="store_true", help="fewer steps, one repetition")
    ap.add_argument("--seed", type=int, default=7, help="seeds the kill points")
    args = ap.parse_args(argv)
    plan = QUICK if args.quick else FULL

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = time.monotonic()
    load_before = os.getloadavg()[0]
    peers_python = ensure_venv(log)
    rng = random.Random(args.seed)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        w: {s: [] for s in SYSTEMS} for w in ("durable", "durable-normal", "growing")
    }
    disk: list[float] = []
    """write+fdatasync latency sampled before each repetition's durable steps."""
    floor: list[float] = []
    """One plain SQLite durable commit, sampled beside it (the least a durable step costs)."""
    step_floor: dict[str, list[float]] = {"FULL": [], "NORMAL": []}
    """A step's records with no kernel: hash-chained rows in one plain SQLite commit."""
    crashes: dict[str, list[dict[str, Any]]] = {s: [] for s in SYSTEMS}
    with tempfile.TemporaryDirectory(prefix="telic-peers-") as tmp:
        workers = Workers(peers_python, Path(tmp), log)
        fsync_before = fdatasync_latency_us(directory=tmp)
        for rep in range(max(plan.repeats, plan.crash_trials)):
            # Each workload runs on the three systems back to back, in an order that rotates
            # with the repetition, so drift on a shared machine spreads over all of them.
            order = SYSTEMS[rep % 3 :] + SYSTEMS[: rep % 3]
            log(f"repetition {rep + 1}: {' -> '.join(order)}")
            for workload in ("durable", "durable-normal", "growing", "crash"):
                if workload == "crash" and rep >= plan.crash_trials:
                    continue
                if workload != "crash" and rep >= plan.repeats:
                    continue
                if workload == "durable":
                    disk.append(fdatasync_latency_us(100, directory=tmp))
                    floor.append(sqlite_commit_us(100, directory=tmp))
                    for sync, samples in step_floor.items():
                        samples.append(sqlite_step_us(100, directory=tmp, synchronous=sync))
                for system in order:
                    if workload == "durable":
                        results[workload][system].append(durable(workers, system, plan))
                    elif workload == "durable-normal":
                        if system == "dbos":
                            continue  # DBOS opens its own connections: not matched
                        results[workload][system].append(durable(workers, system, plan, "normal"))
                    elif workload == "growing":
                        results[workload][system].append(growing(workers, system, plan))
                    else:
                        crashes[system].append(crash(workers, system, plan, rng))
                    log(f"  {workload} {system} ({time.monotonic() - started:.0f} s)")
        fsync_after = fdatasync_latency_us(directory=tmp)

    decode = [r["decode_half_s"] * 1e3 for r in results["growing"]["telic"] if "decode_half_s" in r]
    floors = {
        "sqlite_commit_us": statistics.median(floor),
        "fdatasync_us": statistics.median(disk),
        "decode_half_ms": statistics.median(decode) if decode else float("nan"),
        "step_records_full_us": statistics.median(step_floor["FULL"]),
        "step_records_normal_us": statistics.median(step_floor["NORMAL"]),
    }
    figures = build_figures(results, floors)
    crash_out = crash_summary(crashes)
    machine: dict[str, Any] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "fdatasync_us": {"before": fsync_before, "per_repetition": disk, "after": fsync_after},
        "sqlite_commit_us": {"per_repetition": floor, "median": statistics.median(floor)},
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
        "versions": versions(peers_python),
    }
    elapsed = time.monotonic() - started
    # The table always; with --json it goes to stderr and the JSON object to stdout.
    out = sys.stderr if args.json else sys.stdout
    v = machine["versions"]
    print(
        f"telic {v['telic']} | langgraph {v['langgraph']} (checkpoint-sqlite "
        f"{v['langgraph-checkpoint-sqlite']}) | dbos {v['dbos']} | python {v['python']} | "
        f"sqlite {v['sqlite']} | {machine['cpus']} cpus | write+fdatasync "
        f"{fsync_before:,.0f} / {fsync_after:,.0f} us, load average {load_before:.1f} / "
        f"{machine['load_average']['after']:.1f} (before / after)",
        file=out,
    )
    print(
        f"medians of {plan.repeats} repetition(s); durable: {plan.durable_steps} steps; "
        f"growing: {plan.grow_steps} steps of 1 KB, half = {plan.grow_half}, fork + "
        f"{plan.fork_steps} steps; telic ratio = telic / peer; {elapsed:.0f} s in all",
        file=out,
    )
    print(
        "write+fdatasync before each repetition: "
        + ", ".join(f"{us:,.0f}" for us in disk)
        + " us; one plain SQLite durable commit (WAL, FULL, one row) beside it: "
        + ", ".join(f"{us:,.0f}" for us in floor)
        + " us; durable step per repetition (telic / langgraph / dbos): "
        + ", ".join(
            " / ".join(f"{r['us_per_step']:,.0f}" for r in runs)
            for runs in zip(*(results["durable"][s] for s in SYSTEMS), strict=True)
        )
        + "\n",
        file=out,
    )
    print_table(figures, crash_out, plan, out)
    print_floors(figures, floors, results["growing"]["telic"], out)
    if args.json:
        report = {
            "plan": asdict(plan),
            "machine": machine,
            "seconds": elapsed,
            "floors": floors | _floor_ratios(figures, floors),
            "fork_parts_ms": fork_parts_ms(results["growing"]["telic"]),
            "figures": [f.to_json() for f in figures],
            "crash": crash_out,
        }
        print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
