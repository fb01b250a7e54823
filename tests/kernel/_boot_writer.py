"""Boots runs into a SQLite ledger forever, for the boot crash test: the test SIGKILLs it.

``python -m tests.kernel._boot_writer PATH``: boot runs ``b1``, ``b2``, ... (two scripted
agents each, never ticked), printing ``BOOTED <id>`` (flushed) after each boot returns.
"""

from __future__ import annotations

import sys

from telic.clock import VirtualClock
from telic.kernel import AgentSpec, Kernel, RunConfig
from telic.ledger import SQLiteLedger
from telic.minds.base import ScriptedMind
from telic.proposal import Proposal


def config() -> RunConfig:
    def spec(name: str) -> AgentSpec:
        finish = Proposal(action="finish", args={})
        return AgentSpec(name=name, role="worker", mind=ScriptedMind([finish], name=name))

    return RunConfig(goal="boot and be killed", agents=(spec("a"), spec("b")))


def main() -> None:
    ledger = SQLiteLedger(sys.argv[1])  # synchronous=FULL: every boot is durable

    async def boots(clock: VirtualClock) -> None:
        kernel = Kernel(ledger, clock=clock)
        n = len(ledger.runs())
        print("READY", flush=True)
        while True:
            n += 1
            run = await kernel.boot(config(), run_id=f"b{n}")
            await run.close()
            print(f"BOOTED b{n}", flush=True)

    clock = VirtualClock()
    clock.run(boots(clock))


if __name__ == "__main__":
    main()
