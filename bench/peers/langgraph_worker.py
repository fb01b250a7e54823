"""LangGraph's side of the workloads (run with the peers' venv; see ``run.py``).

A one-node graph that loops on itself until ``count`` reaches ``target``, compiled with
``SqliteSaver`` on a plain ``sqlite3`` connection (the saver turns on WAL; Python's sqlite3
leaves ``synchronous=FULL``), invoked with ``durability="sync"``: each step's checkpoint is
written before the next step starts. Memory is a dict channel with a merging reducer, the
idiomatic way to accumulate state.
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

from common import EFFECT_LATENCY_S, Args, Marks, chunk, db_bytes, emit, now, parse
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

THREAD = "bench"
READS = 5


def _merge(old: dict[str, str], new: dict[str, str]) -> dict[str, str]:
    return {**old, **new}


class State(TypedDict):
    count: int
    target: int
    memory: Annotated[dict[str, str], _merge]


Node = Any  # a function of State returning a partial update


def _graph(
    path: Path, node: Node, sync: str = "full"
) -> tuple[CompiledStateGraph[Any], sqlite3.Connection]:
    def route(s: State) -> str:
        return "step" if s["count"] < s["target"] else END

    builder = StateGraph(State)
    builder.add_node("step", node)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", route)
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute(f"PRAGMA synchronous={sync.upper()}")  # FULL is Python's default already
    return builder.compile(checkpointer=SqliteSaver(conn)), conn


def _config(steps: int, checkpoint: RunnableConfig | None = None) -> RunnableConfig:
    configurable = dict((checkpoint or {}).get("configurable", {}))
    configurable["thread_id"] = THREAD
    return {"configurable": configurable, "recursion_limit": steps + 100}


def _noop(s: State) -> dict[str, Any]:
    return {"count": s["count"] + 1}


def durable(a: Args) -> dict[str, Any]:
    graph, conn = _graph(a.dir / "langgraph.db", _noop, a.sync)
    t0 = now()
    out = graph.invoke(
        {"count": 0, "target": a.steps, "memory": {}}, _config(a.steps), durability="sync"
    )
    elapsed = now() - t0
    assert out["count"] == a.steps
    conn.close()
    return {"us_per_step": elapsed / a.steps * 1e6}


def growing(a: Args) -> dict[str, Any]:
    path = a.dir / "langgraph.db"
    sizes: dict[int, int] = {}

    def grow(s: State) -> dict[str, Any]:
        n = s["count"]
        if n in (0, a.half):  # under "sync", step n is on disk before step n + 1 starts
            sizes.setdefault(n, db_bytes(path))
        return {"count": n + 1, "memory": {f"k{n + 1}": chunk(n + 1)}}

    graph, conn = _graph(path, grow)
    cfg = _config(a.steps)
    graph.invoke({"count": 0, "target": a.steps, "memory": {}}, cfg, durability="sync")
    half_cfg = next(
        snap.config for snap in graph.get_state_history(cfg) if snap.values["count"] == a.half
    )
    conn.close()
    bytes_full = db_bytes(path)

    def timed_read(at: RunnableConfig) -> float:
        times: list[float] = []
        for _ in range(READS):
            reader, rconn = _graph(path, grow)
            t0 = now()
            snap = reader.get_state(at)
            times.append(now() - t0)
            assert snap.values["memory"]
            rconn.close()
        return statistics.median(times)

    read_now = timed_read(cfg)
    read_half = timed_read(_config(a.steps, half_cfg))

    graph, conn = _graph(path, grow)
    t0 = now()
    fork_cfg = graph.update_state(_config(a.steps, half_cfg), {"target": a.half + a.fork_steps})
    t1 = now()
    out = graph.invoke(None, _config(a.steps, fork_cfg), durability="sync")
    t2 = now()
    assert len(out["memory"]) == a.half + a.fork_steps, len(out["memory"])
    conn.close()
    return {
        "bytes_0": sizes[0],
        "bytes_half": sizes[a.half],
        "bytes_full": bytes_full,
        "state_now_s": read_now,
        "state_half_s": read_half,
        "fork_s": t2 - t0,
        "fork_parts_s": {"update_state": t1 - t0, "steps": t2 - t1},
    }


def _effect_node(effects: Marks, acks: Marks) -> Node:
    def effect(s: State) -> dict[str, Any]:
        n = s["count"]
        if n:
            acks.mark(n)  # under "sync", step n is committed before step n + 1 starts
        effects.mark(n + 1)
        time.sleep(EFFECT_LATENCY_S)
        return {"count": n + 1}

    return effect


def crash_run(a: Args) -> dict[str, Any]:
    graph, _ = _graph(a.dir / "langgraph.db", _effect_node(Marks(a.effects), Marks(a.acks)))
    graph.invoke({"count": 0, "target": a.steps, "memory": {}}, _config(a.steps), durability="sync")
    return {"finished": True}


def crash_resume(a: Args) -> dict[str, Any]:
    graph, conn = _graph(a.dir / "langgraph.db", _effect_node(Marks(a.effects), Marks(None)))
    cfg = _config(a.steps)
    recovered = int(graph.get_state(cfg).values["count"])
    out = graph.invoke(None, cfg, durability="sync")
    conn.close()
    return {"recovered": recovered, "done": int(out["count"]), "unknown": 0}


WORKLOADS = {
    "durable": durable,
    "growing": growing,
    "crash-run": crash_run,
    "crash-resume": crash_resume,
}

if __name__ == "__main__":
    args = parse()
    emit(WORKLOADS[args.workload](args))
