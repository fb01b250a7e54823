"""Declaring what a tool's calls need (no cluster here: what is checked and what Ray gets)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from telic.errors import ClusterNeedsPostgres, ConfigError, SpecError
from telic.ledger import open_ledger
from telic.spec import build_run
from telic.tools import tool


async def _nothing() -> int:
    return 1


def test_a_tool_declares_ray_resources() -> None:
    t = tool(resources={"num_gpus": 1, "scanner": 0.5})(_nothing)
    assert dict(t.resources) == {"num_gpus": 1, "scanner": 0.5}
    assert dict(tool(_nothing).resources) == {}


@pytest.mark.parametrize(
    ("resources", "problem"),
    [
        ({"num_gpus": 0}, "positive amount"),
        ({"num_gpus": -1}, "positive amount"),
        ({"num_gpus": float("nan")}, "positive amount"),
        ({"num_gpus": True}, "positive amount"),
        ({"": 1}, "non-empty"),
        ({" ": 1}, "non-empty"),
    ],
)
def test_resources_ray_could_not_schedule_are_refused(
    resources: dict[str, float], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        tool(resources=resources)(_nothing)


SPEC = """
goal = "g"
tools = ["swarm:where", "swarm:pause"]
{extra}
[[agents]]
name = "a"
role = "r"
mind = "swarm:locator"
tools = ["where", "pause"]
"""


def _spec(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(extra=extra), encoding="utf-8")
    return path


def test_the_spec_adds_resources_to_its_tools(tmp_path: Path) -> None:
    here = Path(__file__).parent
    path = _spec(tmp_path, "[resources]\npause = { num_cpus = 2, lab = 1 }\nwhere = { gpu = 1 }")
    built = build_run(path, base_dir=here)
    tools = {t.name: dict(t.resources) for t in built.config.tools}
    assert tools == {"where": {"special": 1, "gpu": 1}, "pause": {"num_cpus": 2, "lab": 1}}


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("[resources]\nnope = { num_gpus = 1 }", "resources names tool 'nope'"),
        ("[resources]\npause = { num_gpus = 0 }", "resources.pause: tool 'pause': resource"),
        ('[resources]\npause = { num_gpus = "x" }', "resources.pause.num_gpus"),
    ],
)
def test_a_bad_resources_table_is_one_spec_error(tmp_path: Path, extra: str, problem: str) -> None:
    with pytest.raises(SpecError, match=problem) as exc:
        build_run(_spec(tmp_path, extra), base_dir=Path(__file__).parent)
    assert "\n" not in str(exc.value)


def test_ray_gets_builtin_resources_as_options_and_the_rest_as_custom() -> None:
    from telic.cluster import ray_options

    assert ray_options({}) == {"num_cpus": 0}
    assert ray_options({"num_gpus": 1, "memory": 2e9, "special": 2, "num_cpus": 1}) == {
        "num_cpus": 1,
        "num_gpus": 1,
        "memory": 2_000_000_000,
        "resources": {"special": 2},
    }


def test_a_tool_without_resources_stays_in_its_run() -> None:
    from telic.cluster import on_ray

    t = tool(_nothing)
    assert on_ray(t) is t


def test_a_cluster_ledger_must_be_postgresql(tmp_path: Path) -> None:
    from telic.cluster import ledger_url, require_postgres

    assert require_postgres("postgresql://u@h/db") == "postgresql://u@h/db"
    for url in ("memory://", str(tmp_path / "l.db"), "sqlite:///x.db"):
        with pytest.raises(ClusterNeedsPostgres, match="need a PostgreSQL ledger"):
            require_postgres(url)
    with open_ledger(str(tmp_path / "l.db")) as ledger, pytest.raises(ClusterNeedsPostgres):
        ledger_url(ledger)


MODEL_SPEC = """
goal = "g"
model = "vllm:served"
[[agents]]
name = "a"
role = "planner"
{extra}
[[agents]]
name = "b"
role = "verifier"
"""


def test_an_agent_declares_resources_for_its_model_calls(tmp_path: Path) -> None:
    path = tmp_path / "spec.toml"
    path.write_text(MODEL_SPEC.format(extra="resources = { gpu_box = 1, num_gpus = 1 }"))
    built = build_run(path)
    agents = {a.name: dict(a.resources) for a in built.config.agents}
    assert agents == {"a": {"gpu_box": 1, "num_gpus": 1}, "b": {}}


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("resources = { num_gpus = 0 }", "agent 'a': resource 'num_gpus' needs a positive"),
        ('resources = { gpu = "x" }', "resources.gpu"),
        ('mind = "swarm:locator"\nresources = { gpu = 1 }', "has a mind and resources"),
    ],
)
def test_bad_agent_resources_are_one_spec_error(tmp_path: Path, extra: str, problem: str) -> None:
    path = tmp_path / "spec.toml"
    path.write_text(MODEL_SPEC.format(extra=extra))
    with pytest.raises(SpecError, match=problem) as exc:
        build_run(path, base_dir=Path(__file__).parent)
    assert "\n" not in str(exc.value)


def test_a_cluster_host_sends_only_model_minds_requests_from_ray_tasks() -> None:
    from telic.cluster.model_calls import RayModelCalls, models_on_ray
    from telic.minds import FunctionMind, model_mind
    from telic.proposal import Proposal

    mind = model_mind("vllm:served", base_url="http://127.0.0.1:9/v1")
    models_on_ray(mind, "a", {})
    assert mind.remote is None
    models_on_ray(mind, "a", {"gpu": 1})
    assert isinstance(mind.remote, RayModelCalls) and mind.remote.resources == {"gpu": 1}
    scripted = FunctionMind(lambda _view: Proposal(action="finish"), name="f")
    with pytest.raises(ConfigError, match="agent 'b' declares resources"):
        models_on_ray(scripted, "b", {"gpu": 1})


def test_explorers_send_their_model_calls_where_their_parents_do() -> None:
    from telic.cluster.host import _explorers_on_ray  # pyright: ignore[reportPrivateUsage]
    from telic.cluster.model_calls import RayModelCalls
    from telic.kernel import AgentSpec
    from telic.minds import ModelMind, model_mind

    def mind() -> ModelMind:
        return model_mind("vllm:served", base_url="http://127.0.0.1:9/v1")

    make = _explorers_on_ray(lambda question, parent: mind())
    assert make is not None
    parent = AgentSpec(name="p", role="r", mind=mind(), resources={"gpu": 1})
    child = make("why?", parent)
    assert isinstance(child, ModelMind) and isinstance(child.remote, RayModelCalls)
    assert child.remote.resources == {"gpu": 1}
    plain = make("why?", dataclasses.replace(parent, resources={}))
    assert isinstance(plain, ModelMind) and plain.remote is None
