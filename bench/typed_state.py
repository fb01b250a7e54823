"""What reading the run state typed costs, and what the alternatives would: ``python
bench/typed_state.py``.

On the reference run's final state (``telic.demo``, seed 7), in µs per operation:

- the reads a mind makes (tick, status, an agent's status, tokens spent, a plan item's value),
  by key on the reducer's dict, and by attribute through :class:`telic.state.RunState` over
  it (the design telic uses: a face over the dict, made per read);
- the alternative of folding into frozen slotted dataclasses: building them from the JSON
  form (what each copy handed to minds and each state read from the ledger would cost), and
  turning them back into the JSON form to hash or snapshot, beside the canonical encoding
  of the dict the reducer keeps now.

A comparison to decide a design with, not a figure with a target (docs/architecture.md,
"The typed state").
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from typing import Any

import telic.demo
from telic.canonical import encode_validated
from telic.clock import VirtualClock
from telic.kernel import Kernel
from telic.ledger import open_ledger
from telic.state import MaybeSub, Record, Rows, RunState, Sub, Tables, attributes


def _final_state() -> dict[str, Any]:
    ledger = open_ledger("memory://")
    cfg, _ = telic.demo.build(telic.demo.DEFAULT_SEED)
    clock = VirtualClock()
    result = clock.run(Kernel(ledger, clock=clock).run(cfg, run_id="demo"))
    return ledger.state_at(result.run_id)


def _us(fn: Callable[[], object], n: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


# -- the alternative: slotted frozen dataclasses, one per record type ---------------------------

_CLASSES: dict[type[Record], type] = {}


def _dataclass_of(record: type[Record]) -> type:
    made = _CLASSES.get(record)
    if made is None:
        names = list(attributes(record))
        made = _CLASSES[record] = dataclasses.make_dataclass(
            record.__name__, names, frozen=True, slots=True
        )
    return made


def _typed(record: type[Record], json: dict[str, Any]) -> Any:
    values: dict[str, Any] = {}
    for name, attr in attributes(record).items():
        if name not in json:
            values[name] = None  # a key only some states have
            continue
        v = json[name]
        of: type[Record] = getattr(attr, "of", Record)
        if isinstance(attr, (Sub, MaybeSub)):
            values[name] = None if v is None else _typed(of, v)
        elif isinstance(attr, Tables):
            values[name] = {key: _typed(of, row) for key, row in v.items()}
        elif isinstance(attr, Rows):
            values[name] = tuple(_typed(of, row) for row in v)
        else:
            values[name] = v
    return _dataclass_of(record)(**values)


def _json(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        out = {f.name: _json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        if out.get("supervision", 0) is None:  # a key only a run with teams has
            del out["supervision"]
        return out
    if isinstance(obj, dict):
        return {k: _json(v) for k, v in obj.items()}  # pyright: ignore[reportUnknownVariableType]
    if isinstance(obj, tuple):
        return [_json(v) for v in obj]  # pyright: ignore[reportUnknownVariableType]
    return obj


def main() -> None:
    state = _final_state()
    agent = next(iter(state["agents"]))

    def by_key() -> object:
        return (
            state["tick"],
            state["status"],
            state["agents"][agent]["status"],
            state["spent"]["tokens"],
            state["plan"]["hotel"]["value"],
        )

    def by_attribute() -> object:
        s = RunState(state)
        return (
            s.tick,
            s.status,
            s.agents[agent].status,
            s.spent.tokens,
            s.plan["hotel"].value,
        )

    typed = _typed(RunState, state)
    assert _json(typed) == state
    rows = [
        ("five reads by key on the reducer's dict", _us(by_key, 20_000)),
        ("the same five reads by attribute (RunState over the dict)", _us(by_attribute, 20_000)),
        ("wrap: RunState(dict)", _us(lambda: RunState(state), 20_000)),
        (
            "alternative: build slotted dataclasses from the JSON form",
            _us(lambda: _typed(RunState, state), 300),
        ),
        ("alternative: slotted dataclasses back to the JSON form", _us(lambda: _json(typed), 300)),
        (
            "canonical encoding of the dict (what snapshots store)",
            _us(lambda: encode_validated(state), 300),
        ),
    ]
    size = len(encode_validated(state))
    print(f"reference run's final state: {size:,} bytes canonical, {len(state['agents'])} agents")
    for name, us in rows:
        print(f"{name:<64} {us:>10.2f} µs")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
