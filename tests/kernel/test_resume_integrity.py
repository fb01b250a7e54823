"""Resume builds on a snapshot only if the snapshot can be trusted: its digest, its place in
the chain, and the state hashes the chain records after it (``tick.completed``)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import orjson
import pytest

from telic.clock import VirtualClock
from telic.errors import ChainBroken
from telic.kernel import Kernel, RunConfig
from telic.ledger import MemoryLedger, open_ledger

from .kit import agent, config, finish, on_virtual_time, play, remember


def _cfg() -> RunConfig:
    steps = [remember(f"k{i}", i) for i in range(12)]
    return config(agent("a", *steps, finish()), agent("b", *steps, finish()))


def _interrupted() -> tuple[MemoryLedger, int]:
    """A run interrupted after 3 ticks, with snapshots every 4 transitions; the last snapshot."""
    ledger = open_ledger("memory://?snapshot_every=4")
    assert isinstance(ledger, MemoryLedger)
    play(_cfg(), ledger=ledger, run_id="r", max_ticks=3)
    last = ledger.last_snapshot("r")
    # the latest snapshot with a tick.completed after it
    completed = [t.seq for t in ledger.read("r") if t.kind == "tick.completed"]
    seq = max(s for s in range(4, completed[-1], 4))
    assert last >= seq
    return ledger, seq


def _resume(ledger: MemoryLedger) -> None:
    async def scenario(clock: VirtualClock) -> None:
        run = await Kernel(ledger, clock=clock).resume("r", _cfg())
        await run.close()

    on_virtual_time(scenario)


def _tamper(ledger: MemoryLedger, seq: int, change: Callable[[dict[str, object]], None]) -> None:
    snaps = ledger.store.snapshots["r"]
    for at in [s for s in snaps if s > seq]:
        del snaps[at]  # resume starts from the tampered one
    state = orjson.loads(snaps[seq].state)
    change(state)
    data = orjson.dumps(state, option=orjson.OPT_SORT_KEYS)
    snaps[seq] = snaps[seq]._replace(state=data, digest=hashlib.sha256(data).digest())
    ledger.raw_rows("r")  # forget what this instance cached


def test_resume_refuses_a_forged_snapshot() -> None:
    ledger, seq = _interrupted()

    def forge(state: dict[str, object]) -> None:
        memory = state["memory"]
        assert isinstance(memory, dict)
        memory["a"] = {"k0": "forged"}

    _tamper(ledger, seq, forge)
    with pytest.raises(ChainBroken, match=f"at sequence {seq}: its snapshot does not fold"):
        _resume(ledger)
    assert ledger.verify("r").first_bad == seq


def test_resume_refuses_a_damaged_snapshot() -> None:
    ledger, seq = _interrupted()
    snaps = ledger.store.snapshots["r"]
    for at in [s for s in snaps if s > seq]:
        del snaps[at]
    broken = bytearray(snaps[seq].state)
    broken[10] ^= 0x20
    snaps[seq] = snaps[seq]._replace(state=bytes(broken))
    ledger.raw_rows("r")
    with pytest.raises(ChainBroken, match=f"at sequence {seq}: its snapshot's state"):
        _resume(ledger)


def test_resume_on_an_intact_snapshot_goes_on() -> None:
    ledger, _ = _interrupted()
    _resume(ledger)
    assert ledger.verify("r").ok
