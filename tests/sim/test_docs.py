"""docs/simulation.md stays true: its example runs, and it names every invariant, every
fault effect and every option the simulator has."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest

from telic.sim import INVARIANTS
from telic.sim.cli import _parser  # pyright: ignore[reportPrivateUsage]
from telic.sim.scenario import MindEffect, SubscriberEffect, ToolEffect

DOC = Path(__file__).resolve().parents[2] / "docs" / "simulation.md"
TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, re.S)


@pytest.mark.parametrize("code", BLOCKS)
def test_the_docs_example_runs(code: str) -> None:
    exec(compile(code, str(DOC), "exec"), {"__name__": "docs_example"})


def test_every_invariant_is_documented() -> None:
    for name in INVARIANTS:
        assert f"| `{name}` |" in TEXT, name


def test_every_fault_effect_is_documented() -> None:
    effects = {*get_args(MindEffect), *get_args(ToolEffect), *get_args(SubscriberEffect)}
    for effect in effects | {"disk_full", "io_error", "before", "after"}:
        assert f"`{effect}`" in TEXT, effect


def test_every_option_is_documented() -> None:
    for action in _parser("x")._actions:  # pyright: ignore[reportPrivateUsage]
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--help":
                assert flag in TEXT, flag
