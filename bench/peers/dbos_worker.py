"""DBOS's side of the workloads (run with the peers' venv; see ``run.py``).

DBOS Transact on its SQLite system database (``system_database_url="sqlite:///..."``, as DBOS
creates it: rollback journal, ``synchronous=FULL``): one workflow, one ``@DBOS.step`` per
iteration. DBOS records each step's output before the workflow body goes on, so every step is
committed before the next. The state of a workflow is its recorded step outputs.
"""

from __future__ import annotations

import logging
import sqlite3
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import EFFECT_LATENCY_S, Args, Marks, chunk, db_bytes, emit, now, parse
from dbos import DBOS, DBOSConfig, SetWorkflowID, WorkflowHandle

READS = 5
POLL_S = 0.001
"""``get_result`` polling interval for handles that poll (DBOS's default is 1 s)."""
FORK_QUEUE = "bench-forks"
"""Forks are dispatched through a queue; this one is polled every 10 ms (the default is 1 s)."""


def _ignore(_step: int) -> None:
    return None


class _Hooks:
    """What the workflows need from the workload that runs them (set before launch)."""

    effects = Marks(None)
    acks = Marks(None)
    stop_at: int | None = None
    """Set before a fork: a fork keeps the original arguments, so the new bound comes here."""
    after_step: Callable[[int], None] = staticmethod(_ignore)
    executed = 0
    """Steps whose body actually ran in this process (not replayed from the database)."""


@DBOS.step()
def noop(i: int) -> int:
    return i


@DBOS.workflow()
def noop_loop(n: int) -> int:
    for i in range(1, n + 1):
        noop(i)
    return n


@DBOS.step()
def add(i: int) -> str:
    _Hooks.executed += 1
    return chunk(i)


@DBOS.workflow()
def grow_loop(n: int) -> int:
    memory: dict[str, str] = {}
    for i in range(1, n + 1):
        if _Hooks.stop_at is not None and i > _Hooks.stop_at:
            break
        memory[f"k{i}"] = add(i)
        _Hooks.after_step(i)
    return len(memory)


@DBOS.step()
def effect(i: int) -> int:
    _Hooks.effects.mark(i)
    time.sleep(EFFECT_LATENCY_S)
    return i


@DBOS.workflow()
def effect_loop(n: int) -> int:
    for i in range(1, n + 1):
        effect(i)
        _Hooks.acks.mark(i)  # the step's output is recorded once effect() has returned
    return n


def _db(a: Args) -> Path:
    return a.dir / "dbos.sqlite"


def _launch(a: Args) -> None:
    logging.getLogger("dbos").setLevel(logging.WARNING)
    config: DBOSConfig = {
        "name": "bench",
        "system_database_url": f"sqlite:///{_db(a)}",
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()


def durable(a: Args) -> dict[str, Any]:
    if a.sync != "full":
        raise SystemExit("DBOS sets up its own SQLite connections; only its default is measured")
    _launch(a)
    t0 = now()
    result = DBOS.start_workflow(noop_loop, a.steps).get_result()
    elapsed = now() - t0
    assert result == a.steps
    DBOS.destroy()
    return {"us_per_step": elapsed / a.steps * 1e6}


def _memory(steps: list[Any]) -> dict[str, str]:
    return {f"k{s['function_id']}": s["output"] for s in steps}


def growing(a: Args) -> dict[str, Any]:
    _launch(a)
    path = _db(a)
    sizes: dict[int, int] = {}

    def measure(i: int) -> None:
        if i == a.half:
            sizes.setdefault(i, db_bytes(path))

    _Hooks.after_step = measure
    bytes_0 = db_bytes(path)
    with SetWorkflowID("grow"):
        handle = DBOS.start_workflow(grow_loop, a.steps)
    assert handle.get_result() == a.steps
    bytes_full = db_bytes(path)

    def timed_read(limit: int | None) -> float:
        times: list[float] = []
        for _ in range(READS):
            t0 = now()
            memory = _memory(DBOS.list_workflow_steps("grow", limit=limit))
            times.append(now() - t0)
            assert len(memory) == (limit or a.steps)
        return statistics.median(times)

    read_now = timed_read(None)
    read_half = timed_read(a.half)

    # The queue manager starts a worker for a new queue within its 1 s check interval; the
    # fork is timed once that worker is up and idle (a queue registered while the workflow
    # ran would back off under contention).
    DBOS.register_queue(FORK_QUEUE, polling_interval_sec=0.01)
    time.sleep(1.5)
    _Hooks.stop_at = a.half + a.fork_steps
    executed = _Hooks.executed
    t0 = now()
    fork = DBOS.fork_workflow("grow", a.half + 1, queue_name=FORK_QUEUE)
    t1 = now()
    assert fork.get_result(polling_interval_sec=POLL_S) == a.half + a.fork_steps
    t2 = now()
    assert _Hooks.executed - executed == a.fork_steps
    DBOS.destroy()
    return {
        "bytes_0": bytes_0,
        "bytes_half": sizes[a.half],
        "bytes_full": bytes_full,
        "state_now_s": read_now,
        "state_half_s": read_half,
        "fork_s": t2 - t0,
        "fork_parts_s": {"fork_workflow": t1 - t0, "dispatch_and_steps": t2 - t1},
    }


def crash_run(a: Args) -> dict[str, Any]:
    _Hooks.effects, _Hooks.acks = Marks(a.effects), Marks(a.acks)
    _launch(a)
    with SetWorkflowID("crash"):
        DBOS.start_workflow(effect_loop, a.steps).get_result()
    DBOS.destroy()
    return {"finished": True}


def crash_resume(a: Args) -> dict[str, Any]:
    conn = sqlite3.connect(_db(a))
    (recovered,) = conn.execute(
        "SELECT COUNT(*) FROM operation_outputs WHERE workflow_uuid = 'crash'"
    ).fetchone()
    conn.close()
    _Hooks.effects = Marks(a.effects)
    _launch(a)  # launching recovers this executor's pending workflows
    handle: WorkflowHandle[int] = DBOS.retrieve_workflow("crash")
    done = handle.get_result(polling_interval_sec=POLL_S)
    DBOS.destroy()
    return {"recovered": int(recovered), "done": int(done), "unknown": 0}


WORKLOADS = {
    "durable": durable,
    "growing": growing,
    "crash-run": crash_run,
    "crash-resume": crash_resume,
}

if __name__ == "__main__":
    args = parse()
    emit(WORKLOADS[args.workload](args))
