"""A subscriber cannot reach the kernel's state through the payloads it is handed: changing a
delivered payload in place changes neither the run's working state nor what it records next."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from telic.clock import VirtualClock
from telic.events import Event, EventKernel
from telic.kernel import AgentSpec, Kernel, RunConfig
from telic.ledger import open_ledger
from telic.minds.base import FunctionMind, View
from telic.proposal import Proposal
from telic.transition import Transition


def _mind(view: View) -> Proposal:
    if view.tick == 1:
        return Proposal(action="remember", args={"key": "k", "value": {"items": [1, 2]}})
    if view.tick == 2:
        return Proposal(action="message", args={"to": "a", "content": {"note": ["hi"]}})
    return Proposal(action="finish", args={"result": {"done": [True]}})


def _vandalise(data: Any) -> None:
    """Change every container inside ``data`` in place."""
    if isinstance(data, dict):
        for v in list(data.values()):  # pyright: ignore[reportUnknownVariableType,reportUnknownArgumentType]
            _vandalise(v)
        data["vandal"] = True
    elif isinstance(data, list):
        for v in list(data):  # pyright: ignore[reportUnknownVariableType,reportUnknownArgumentType]
            _vandalise(v)
        data.append("vandal")


def test_a_subscriber_that_changes_its_events_changes_nothing_of_the_run() -> None:
    ledger = open_ledger("memory://")
    clock = VirtualClock()
    seen: list[str] = []

    def vandal(event: Event) -> None:
        seen.append(event.kind)
        _vandalise(event.data)

    async def main() -> None:
        events = EventKernel(ledger, clock=clock)
        events.on("*", vandal)
        kernel = Kernel(ledger, clock=clock, publish=events.publish)
        config = RunConfig(goal="isolation", agents=[AgentSpec("a", "worker", FunctionMind(_mind))])
        run = await kernel.boot(config, run_id="run")
        try:
            while await run.step():
                await asyncio.sleep(0.01)  # let the subscriber vandalise what it got
                assert "vandal" not in str(run.fold.peek())
        finally:
            await run.close()
        await asyncio.sleep(0.01)
        await events.aclose()

    clock.run(main())
    assert "memory.updated" in seen and "message.sent" in seen
    # the kernel's own state never saw the changes: the hashes it recorded match a fold of
    # the ledger's bytes, and so does what it ended with.
    assert ledger.verify("run").ok
    assert ledger.replay("run").folded == ledger.run("run").head


def test_the_transitions_a_publisher_gets_share_nothing_with_the_working_state() -> None:
    ledger = open_ledger("memory://")
    clock = VirtualClock()
    published: list[Transition] = []

    def publish(batch: Sequence[Transition]) -> None:
        for t in batch:
            _vandalise(t.data)
        published.extend(batch)

    async def main() -> dict[str, Any]:
        kernel = Kernel(ledger, clock=clock, publish=publish)
        config = RunConfig(goal="isolation", agents=[AgentSpec("a", "worker", FunctionMind(_mind))])
        result = await kernel.run(config, run_id="run")
        return dict(result.state.json)

    state = clock.run(main())
    assert state["memory"]["a"]["k"] == {"items": [1, 2]}
    assert "vandal" not in str(state)
    assert published
    # what the kernel recorded after the vandalism still chains and replays
    report = ledger.verify("run")
    assert report.ok, report.reason
