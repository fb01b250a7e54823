"""Run specs in process: what a spec's tables build (policy, budget, agents, resolvers) and
the one-line :class:`SpecError` each bad entry gets. ``test_run.py`` drives ``telic run``."""

from __future__ import annotations

from pathlib import Path

import pytest

from telic.errors import SpecError
from telic.kernel import RunConfig
from telic.policy import Budgeter
from telic.spec import build_run

MINDS = """
from telic.minds import FunctionMind
from telic.proposal import Proposal

def idle() -> FunctionMind:
    return FunctionMind(lambda view: Proposal(action="remember", args={"key": "t", "value": 1}))
"""

BASE = """
goal = "g"
[[agents]]
name = "a"
role = "r"
mind = "spec_minds:idle"
"""


def _build(tmp_path: Path, text: str) -> RunConfig:
    (tmp_path / "spec_minds.py").write_text(MINDS)
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    return build_run(spec).config


def test_the_budgeter_reads_the_cost_fields_the_spec_names(tmp_path: Path) -> None:
    config = _build(
        tmp_path,
        BASE.replace(
            'goal = "g"',
            'goal = "g"\n[policy]\nresolver = "budgeter"\n'
            'resolvers = { "plan:*" = "budgeter" }\nbudgeter_cost = ["total_chf", "total"]',
        ),
    )
    policy = config.policy
    for resolver in (policy.resolver, policy.resolvers["plan:*"]):
        assert isinstance(resolver, Budgeter)
        assert resolver.cost_fields == ("total_chf", "total")
    default = _build(
        tmp_path, BASE.replace('goal = "g"', 'goal = "g"\n[policy]\nresolver = "budgeter"')
    )
    assert default.policy.resolver == Budgeter()


@pytest.mark.parametrize(
    ("entry", "expect"),
    [
        ("budgeter_cost = []", "policy.budgeter_cost: Tuple should have at least 1 item"),
        ('budgeter_cost = [""]', "policy.budgeter_cost.0: String should have at least 1"),
        ('budgeter_cost = "total_chf"', "policy.budgeter_cost: Input should be a valid tuple"),
    ],
)
def test_bad_budgeter_cost_fields_are_one_clear_error(
    tmp_path: Path, entry: str, expect: str
) -> None:
    with pytest.raises(SpecError) as caught:
        _build(tmp_path, BASE.replace('goal = "g"', f'goal = "g"\n[policy]\n{entry}'))
    assert expect in str(caught.value)
    assert "\n" not in str(caught.value)
