"""Run specs in process: what a spec's tables build (policy, budget, agents, resolvers) and
the one-line :class:`SpecError` each bad entry gets. ``test_run.py`` drives ``telic run``."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from telic.errors import SpecError
from telic.kernel import Budget, RunConfig, Team
from telic.policy import Budgeter, Policy
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


def test_a_spec_without_tables_gets_the_kernel_defaults(tmp_path: Path) -> None:
    config = _build(tmp_path, BASE)
    assert config.budget == Budget()
    default = Policy()
    for f in dataclasses.fields(Policy):
        if f.name not in ("extra", "verifier", "resolver", "resolvers"):
            assert getattr(config.policy, f.name) == getattr(default, f.name), f.name
    agent = config.agents[0]
    assert (agent.name, agent.role, agent.tools, agent.restart, agent.priority) == (
        "a",
        "r",
        (),
        "permanent",
        0,
    )


def test_every_field_of_the_tables_reaches_the_object_it_configures(tmp_path: Path) -> None:
    text = BASE.replace(
        'goal = "g"',
        """goal = "g"
tools = "telic.demo:reference_tools"
[budget]
tokens = 1000
cost = 2.5
tool_calls = 9
ticks = 4
wall_s = 60
currency = "CHF"
rates = { USD = 0.8 }
[policy]
max_proposal_bytes = 4096
loop_repeats = 4
stall_ticks = 0
exploration_threshold = 0.25
warn_at = 0.5
approval_timeout_s = 30
fail_agent_on_tool_error = false
mind_timeout_s = 12
cancel_grace_s = 0.5
""",
    ).replace(
        'mind = "spec_minds:idle"',
        'mind = "spec_minds:idle"\ntools = ["hotels"]\nrestart = "transient"\npriority = 3',
    )
    config = _build(tmp_path, text)
    assert config.budget == Budget(
        tokens=1000, cost=2.5, tool_calls=9, ticks=4, wall_s=60, currency="CHF", rates={"USD": 0.8}
    )
    p = config.policy
    assert (p.max_proposal_bytes, p.loop_repeats, p.stall_ticks, p.exploration_threshold) == (
        4096,
        4,
        0,
        0.25,
    )
    assert (p.warn_at, p.approval_timeout_s, p.fail_agent_on_tool_error) == (0.5, 30, False)
    assert (p.mind_timeout_s, p.cancel_grace_s) == (12, 0.5)
    a = config.agents[0]
    assert (a.tools, a.restart, a.priority) == (("hotels",), "transient", 3)


@pytest.mark.parametrize(
    ("table", "entry", "expect"),
    [
        (
            "policy",
            "stall_ticks = -1",
            "policy.stall_ticks: Input should be greater than or equal to 0",
        ),
        ("policy", "warn_at = 0", "policy.warn_at: Input should be greater than 0"),
        (
            "policy",
            "exploration_threshold = 1.5",
            "policy.exploration_threshold: Input should be less than or equal to 1",
        ),
        (
            "policy",
            "max_proposal_bytes = 100",
            "policy.max_proposal_bytes: Input should be greater than or equal to 256",
        ),
        (
            "policy",
            "cancel_grace_s = -1",
            "policy.cancel_grace_s: Input should be greater than or equal to 0",
        ),
        ("policy", 'loop_repeats = "many"', "policy.loop_repeats: Input should be a valid integer"),
        ("policy", "verifier = 1", "unknown field 'policy.verifier'"),
        ("policy", "extra = []", "unknown field 'policy.extra'"),
        ("budget", "tokens = -5", "budget.tokens: Input should be greater than or equal to 0"),
        ("budget", "wall_s = nan", "budget.wall_s: Input should be a finite number"),
        ("budget", "token = 5", "unknown field 'budget.token'"),
    ],
)
def test_bad_entries_of_derived_tables_are_one_clear_error(
    tmp_path: Path, table: str, entry: str, expect: str
) -> None:
    with pytest.raises(SpecError) as caught:
        _build(tmp_path, BASE.replace('goal = "g"', f'goal = "g"\n[{table}]\n{entry}'))
    assert expect in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("entry", "expect"),
    [
        ('name = ""', "agents.0.name: String should have at least 1 character"),
        ('priority = "high"', "agents.0.priority: Input should be a valid integer"),
        (
            'restart = "sometimes"',
            "agents.0.restart: Input should be 'permanent', 'transient' or 'temporary'",
        ),
        ("tools = 3", "agents.0.tools: Input should be a valid tuple"),
    ],
)
def test_bad_agent_entries_are_one_clear_error(tmp_path: Path, entry: str, expect: str) -> None:
    key = entry.split(" =")[0]
    text = (
        "\n".join(line for line in BASE.splitlines() if not line.startswith(f"{key} ="))
        + f"\n{entry}\n"
    )
    with pytest.raises(SpecError) as caught:
        _build(tmp_path, text)
    assert expect in str(caught.value)


def test_teams_tables_build_the_supervision_tree(tmp_path: Path) -> None:
    text = (
        BASE
        + '\n[[agents]]\nname = "b"\nrole = "s"\nmind = "spec_minds:idle"\n'
        + '\n[[teams]]\nname = "outer"\nroles = ["r"]\nteams = ["inner"]\nintensity = 2\n'
        + '\n[[teams]]\nname = "inner"\nagents = ["b"]\nstrategy = "one_for_all"\n'
        + 'restart = "transient"\nperiod_s = 10\n'
    )
    config = _build(tmp_path, text)
    assert config.teams == [
        Team("outer", roles=("r",), teams=("inner",), intensity=2),
        Team("inner", agents=("b",), strategy="one_for_all", restart="transient", period_s=10),
    ]
    tree = config.tree()
    assert (tree.home("a"), tree.home("b"), tree.children("root")) == ("outer", "inner", ("outer",))


@pytest.mark.parametrize(
    ("entry", "expect"),
    [
        ('name = "t"\nroles = ["r"]\nintensity = -1', "teams.0.intensity: Input should be greater"),
        (
            'name = "t"\nroles = ["r"]\nperiod_s = 0',
            "teams.0.period_s: Input should be greater than 0",
        ),
        ('name = "t"\nroles = ["r"]\nrestart = "never"', "teams.0.restart: Input should be"),
        ('roles = ["r"]', "teams.0.name is required"),
        ('name = "t"', "supervision tree: team 't' has no members"),
        ('name = "a"\nroles = ["r"]', "team 'a' has the name of an agent"),
    ],
)
def test_bad_teams_are_one_clear_error(tmp_path: Path, entry: str, expect: str) -> None:
    with pytest.raises(SpecError) as caught:
        _build(tmp_path, BASE + f"\n[[teams]]\n{entry}\n")
    assert expect in str(caught.value)
    assert "\n" not in str(caught.value)


KERNEL_MD = Path(__file__).resolve().parents[2] / "docs" / "kernel.md"


def test_the_tree_in_docs_kernel_md_is_the_same_in_python_and_toml(tmp_path: Path) -> None:
    text = KERNEL_MD.read_text(encoding="utf-8")
    section = text[text.index("### Supervision trees") :]
    python = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    toml = re.findall(r"```toml\n(.*?)```", section, re.S)[0]
    roles = ("researcher", "skeptic", "planner", "budgeter", "verifier", "coordinator")
    agents = "".join(
        f'\n[[agents]]\nname = "{r}"\nrole = "{r}"\nmind = "spec_minds:idle"\n' for r in roles
    )
    from_toml = _build(tmp_path, 'goal = "g"\n' + toml + agents)
    scope: dict[str, object] = {
        "RunConfig": RunConfig,
        "Team": Team,
        "GOAL": "g",
        "agents": from_toml.agents,
    }
    exec(compile(python, str(KERNEL_MD), "exec"), scope)
    from_python = scope["config"]
    assert isinstance(from_python, RunConfig)
    assert from_python.tree() == from_toml.tree()
    tree = from_toml.tree()
    assert tree.children("root") == ("research", "planning")
    assert tree.children("planning") == ("planner", "budgeter", "verifier", "checks")
    assert (tree.strategy, tree.intensity, tree.period_s) == ("one_for_one", 3, 30)


def test_a_spec_given_as_text_is_built_without_its_file_and_recorded(tmp_path: Path) -> None:
    """What a Ray cluster's driver sends: the host builds the text it got and records it,
    and a host taking the run over rebuilds it from the ledger, the file nowhere."""
    import asyncio

    from telic.kernel import Kernel
    from telic.ledger import open_ledger
    from telic.spec import recorded_spec

    (tmp_path / "spec_minds.py").write_text(MINDS)
    gone = tmp_path / "gone" / "spec.toml"
    text = BASE.replace('goal = "g"', 'goal = "from the text"')
    built = build_run(gone, base_dir=tmp_path, text=text)
    assert built.config.goal == "from the text"
    with open_ledger("memory://") as ledger:
        run = asyncio.run(Kernel(ledger).boot(built.config, run_id="r"))
        asyncio.run(run.close())
        recorded = recorded_spec(ledger, "r")
    assert recorded is not None and recorded.text == text
    again = build_run(recorded.path, base_dir=recorded.base_dir, text=recorded.text)
    assert again.config.goal == "from the text"
    with pytest.raises(SpecError, match="no such file"):
        build_run(gone, base_dir=tmp_path)  # without its text, the file is needed as before
    on_disk = tmp_path / "spec.toml"
    on_disk.write_text(BASE)
    assert "text" not in build_run(on_disk).config.record["spec"]  # a file's run records no text


def test_the_root_supervisors_entries_are_runconfigs_fields(tmp_path: Path) -> None:
    """``strategy``, ``intensity`` and ``period_s`` at a spec's top level are derived from
    :class:`RunConfig`: its defaults when absent, its bounds when present."""
    defaults = RunConfig(goal="g", agents=())
    config = _build(tmp_path, BASE)
    assert (config.strategy, config.intensity, config.period_s) == (
        defaults.strategy,
        defaults.intensity,
        defaults.period_s,
    )
    top = 'goal = "g"\nstrategy = "rest_for_one"\nintensity = 7\nperiod_s = 2.5'
    config = _build(tmp_path, BASE.replace('goal = "g"', top))
    assert (config.strategy, config.intensity, config.period_s) == ("rest_for_one", 7, 2.5)
    for entry, expect in [
        ("intensity = -1", "intensity: Input should be greater than or equal to 0"),
        ("period_s = 0", "period_s: Input should be greater than 0"),
        ('strategy = "all"', "strategy: Input should be 'one_for_one', 'one_for_all' or"),
    ]:
        with pytest.raises(SpecError) as caught:
            _build(tmp_path, BASE.replace('goal = "g"', f'goal = "g"\n{entry}'))
        assert expect in str(caught.value)
