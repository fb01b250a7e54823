"""Seeded fault storms: whatever the strategy and schedule, the event stream stays coherent,
is the same on every run, and nothing is left running after stop."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from telic.errors import SupervisionError
from telic.kinds import AgentFailed, AgentRestarted, AgentTerminated, SupervisorEscalated
from telic.supervision import ChildSpec, RestartType, Strategy, Supervisor

from .kit import Recorder, run

STRATEGIES: list[Strategy] = ["one_for_one", "one_for_all", "rest_for_one"]
RESTARTS: list[RestartType] = ["permanent", "transient", "temporary"]


def _body(rng: random.Random) -> Callable[[], Coroutine[Any, Any, None]]:
    async def body() -> None:
        await asyncio.sleep(rng.choice([0.5, 1.0, 2.5, 4.0, 7.0]))
        if rng.random() < 0.6:
            raise RuntimeError("tool timed out")

    return body


def _storm(seed: int) -> list[str]:
    async def scenario() -> list[str]:
        rng = random.Random(seed)
        rec = Recorder()
        ids = [f"c{i}" for i in range(5)]
        sup = Supervisor(
            "root",
            [ChildSpec(i, _body(rng), restart=rng.choice(RESTARTS)) for i in ids],
            strategy=rng.choice(STRATEGIES),
            intensity=rng.choice([2, 4, 8]),
            period=rng.choice([3.0, 10.0]),
            on_event=rec,
        )
        await sup.start()
        for _ in range(12):
            await asyncio.sleep(rng.choice([0.3, 1.1, 2.0]))
            if not sup.running:
                break
            running = [c.id for c in sup.which_children() if c.running]
            if running and rng.random() < 0.5:
                sup.kill(rng.choice(running), "hallucination")
        await asyncio.sleep(1.0)
        failed = False
        if not sup.running:  # it gave up
            with pytest.raises(SupervisionError):
                await sup.wait()
            failed = True
        await sup.stop()
        _check_coherent(rec, ids, failed)
        return rec.lines()

    return run(scenario)


def _check_coherent(rec: Recorder, ids: list[str], failed: bool) -> None:
    """Each child alternates up -> exit event -> (restarted -> up)*; ends down."""
    up = dict.fromkeys(ids, True)
    escalated = False
    for e in rec.events:
        if isinstance(e, AgentFailed | AgentTerminated):
            assert up[e.agent], f"{e.agent} exited twice: {rec.lines()}"
            up[e.agent] = False
        elif isinstance(e, AgentRestarted):
            assert not escalated
            assert not up[e.agent], f"{e.agent} restarted while up: {rec.lines()}"
            up[e.agent] = True
        elif isinstance(e, SupervisorEscalated):
            escalated = True
    assert not any(up.values()), rec.lines()
    assert escalated == failed


@pytest.mark.parametrize("seed", range(12))
def test_a_fault_storm_is_coherent_and_repeatable(seed: int) -> None:
    first = _storm(seed)
    assert first == _storm(seed)
