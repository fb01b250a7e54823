"""Run specs: a swarm described in a TOML file, for ``telic run SPEC [--model MODEL]``.

A spec names the goal, the agents (role, tools, restart, priority, and a model or a mind by
import path), their supervision tree (teams), the tools (import paths), the budget, the policy,
and the run's functions (return condition, progress, artifacts) by import path (the tables are
in :mod:`telic.spec.entries`). :func:`load_spec` reads and validates it;
:func:`build_run` turns it into a :class:`~telic.kernel.RunConfig` with model minds::

    built = build_run("examples/trip.toml", model="openai:gpt-4.1-mini", clock=SystemClock())
    run = await Kernel(ledger, clock=clock).boot(built.config)
    ...
    await built.aclose()

Every problem is a :class:`~telic.errors.SpecError` (a :class:`~telic.errors.ConfigError`)
whose one-line message names the spec file and what to fix. The format is documented in
``docs/models.md`` ("Run specs").
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import os
import re
import sys
import tomllib
from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from pydantic import ValidationError

import telic.prompts
from telic.clock import Clock
from telic.errors import ConfigError, SpecError, TelicError, TreeInvalid
from telic.kernel import AgentBudget, AgentSpec, Artifact, Budget, RunConfig, Team
from telic.kernel.tree import plan
from telic.minds.base import Mind
from telic.minds.factory import model_mind, shared_scheduler
from telic.minds.model import ModelMind
from telic.minds.providers import parse_model, resolve_provider
from telic.minds.scheduler import Limits, Scheduler
from telic.policy import Budgeter, FirstByOrder, Policy, PriorityByRole, Resolver
from telic.spec.entries import (
    AgentEntry,
    BudgetEntry,
    McpServerEntry,
    PolicyEntry,
    ResolverName,
    RunSpec,
    TeamEntry,
    derived_fields,
)
from telic.state import RunState
from telic.tools import Tool

__all__ = [
    "AgentEntry",
    "BudgetEntry",
    "BuiltRun",
    "McpServerEntry",
    "PolicyEntry",
    "RecordedSpec",
    "RunSpec",
    "TeamEntry",
    "build_run",
    "load_object",
    "load_spec",
    "recorded_spec",
]

# -- loading -------------------------------------------------------------------------------


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def _validation_problem(exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(spec)"
    kind = first["type"]
    if kind == "extra_forbidden":
        problem = f"unknown field {loc!r}: remove it or fix its spelling"
    elif kind == "missing":
        problem = f"{loc} is required"
    elif kind == "literal_error" and "resolver" in loc:
        problem = f"{loc}: unknown resolver {first['input']!r}; use budgeter, priority or first"
    else:
        problem = f"{loc}: {first['msg']} (got {_one_line(repr(first['input']))[:80]})"
    if len(errors) > 1:
        problem += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return problem


def load_spec(
    path: str | Path, overrides: Mapping[str, Any] | None = None, *, text: str | None = None
) -> RunSpec:
    """Read and validate the spec at ``path`` (no imports yet: see :func:`build_run`).

    A ``.json`` file holds the same tables as JSON. ``overrides`` replace top-level fields
    (``policy`` is merged field by field), as a counterfactual resume asks. ``text`` is the
    file's content when it was read elsewhere (the file need not exist here then).
    """
    where = str(path)
    p = Path(path)
    if text is None and not p.is_file():
        problem = "it is a directory" if p.is_dir() else "no such file"
        raise SpecError(where, f"{problem}; pass the path of a TOML run spec")
    data: Any
    try:
        if text is None:
            text = p.read_text(encoding="utf-8")
        data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(where, f"not valid TOML: {exc}") from None
    except json.JSONDecodeError as exc:
        raise SpecError(where, f"not valid JSON: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(where, f"cannot read it: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(where, "a spec is a table (a JSON object) of goal, agents, tools...")
    table: dict[str, Any] = dict(cast(dict[str, Any], data))
    for key, value in (overrides or {}).items():
        if key == "policy" and isinstance(value, Mapping):
            table["policy"] = {**table.get("policy", {}), **cast(Mapping[str, Any], value)}
        else:
            table[key] = value
    try:
        return RunSpec.model_validate(table)
    except ValidationError as exc:
        raise SpecError(where, _validation_problem(exc)) from None


@contextmanager
def _importable(directory: Path) -> Generator[None]:
    """Import paths resolve with the spec's directory on ``sys.path`` first."""
    entry = str(directory)
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added and entry in sys.path:
            sys.path.remove(entry)


def load_object(path: str, *, what: str, where: str = "<spec>") -> Any:
    """The object at ``module:attr`` (``attr`` may be dotted), or a :class:`SpecError`."""
    module_name, sep, attr = path.partition(":")
    module_name, attr = module_name.strip(), attr.strip()
    if not sep or not module_name or not attr:
        raise SpecError(where, f"{what} {path!r} is not an import path; write 'module:name'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(
            where, f"{what} {path!r}: cannot import {module_name!r} ({_one_line(exc)})"
        ) from None
    except Exception as exc:  # the module itself failed while importing
        raise SpecError(
            where,
            f"{what} {path!r}: importing {module_name!r} failed: "
            f"{type(exc).__name__}: {_one_line(exc)}",
        ) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SpecError(
                where, f"{what} {path!r}: {module_name!r} has no attribute {attr!r}"
            ) from None
    return obj


def _callable(path: str, *, what: str, where: str) -> Callable[..., Any]:
    obj = load_object(path, what=what, where=where)
    if not callable(obj):
        raise SpecError(where, f"{what} {path!r} is not callable")
    return cast(Callable[..., Any], obj)


def _tools_from(path: str, where: str) -> list[Tool]:
    obj = load_object(path, what="tools", where=where)
    if callable(obj) and not isinstance(obj, Tool):
        try:
            obj = obj()
        except TelicError:
            raise
        except TypeError as exc:
            raise SpecError(
                where, f"tools {path!r}: a tools factory takes no arguments ({_one_line(exc)})"
            ) from None
        except Exception as exc:
            raise SpecError(
                where, f"tools {path!r} failed: {type(exc).__name__}: {_one_line(exc)}"
            ) from None
    items: list[Any] = []
    if isinstance(obj, Tool):
        items = [obj]
    elif isinstance(obj, (list, tuple)):
        items = list(cast(Sequence[Any], obj))
    if not items or not all(isinstance(t, Tool) for t in items):
        raise SpecError(
            where,
            f"tools {path!r} must be a Tool, a list of Tools, or a zero-argument factory of "
            "either (see telic.tools.tool)",
        )
    return cast(list[Tool], items)


def _mind_from(path: str, agent: str, where: str) -> Mind:
    obj = load_object(path, what=f"agent {agent!r}: mind", where=where)
    if inspect.isclass(obj) or (callable(obj) and not isinstance(obj, Mind)):
        try:
            obj = obj()
        except TelicError:
            raise
        except TypeError as exc:
            raise SpecError(
                where,
                f"agent {agent!r}: mind {path!r} must be a Mind or a zero-argument factory of "
                f"one ({_one_line(exc)})",
            ) from None
        except Exception as exc:
            raise SpecError(
                where,
                f"agent {agent!r}: mind {path!r} failed: {type(exc).__name__}: {_one_line(exc)}",
            ) from None
    if not isinstance(obj, Mind):
        raise SpecError(
            where, f"agent {agent!r}: mind {path!r} is not a Mind (an object with async propose)"
        )
    return obj


# -- building ------------------------------------------------------------------------------


@dataclass
class BuiltRun:
    """A spec turned into a run configuration, with the model minds it made (to close)."""

    spec: RunSpec
    path: Path
    """The spec file, absolute."""
    config: RunConfig
    model: str | None
    """The ``--model`` override it was built with (None: the spec's own)."""
    minds: list[ModelMind] = field(default_factory=list[ModelMind])
    servers: list[Any] = field(default_factory=list[Any])
    """The MCP servers (:class:`telic.mcp.McpServer`) the tools call; closed by aclose."""

    async def aclose(self) -> None:
        """Close the model minds' clients (explorers included) and the MCP servers."""
        for m in self.minds:
            await m.aclose()
        self.minds.clear()
        for s in self.servers:
            await s.aclose()
        self.servers.clear()


class _Models:
    """Makes model minds; one scheduler per endpoint holds the spec's ``[scheduler]``."""

    def __init__(self, spec: RunSpec, base: Path, clock: Clock | None, where: str) -> None:
        self.spec = spec
        self.budget = Budget(**derived_fields(spec.budget))
        self.clock = clock
        self.where = where
        self.made: list[ModelMind] = []
        self._schedulers: dict[tuple[str, str, str], Scheduler] = {}
        self._limits: Limits | None = None
        if spec.scheduler is not None:
            try:
                self._limits = Limits(**spec.scheduler)
            except TypeError as exc:
                raise SpecError(where, f"[scheduler]: {_one_line(exc)}") from None
            except ConfigError as exc:
                raise SpecError(where, f"[scheduler]: {exc}") from None
        self.mind_timeout_s = _mind_timeout(spec, self._limits or Limits(), where)
        self.prompts_dir = None if spec.prompts_dir is None else base / spec.prompts_dir
        prices = spec.prices
        self.prices: Any = str(base / prices) if isinstance(prices, str) else prices

    def check(self, model: str) -> None:
        parse_model(model)  # UnknownProvider, naming the known prefixes

    def make(self, model: str, *, role: str, role_prompt: str | None = None) -> ModelMind:
        if self.spec.instructions:
            base = role_prompt or telic.prompts.role_prompt(role, directory=self.prompts_dir)
            role_prompt = f"{base.rstrip()}\n\n{self.spec.instructions.strip()}\n"
        preset, _ = parse_model(model)
        scheduler: Scheduler | None = None
        if self._limits is not None:
            provider = resolve_provider(preset)
            scheduler = self._schedulers.get(provider.key)
            if scheduler is None:
                scheduler = self._schedulers[provider.key] = shared_scheduler(
                    provider, limits=self._limits, clock=self.clock
                )
        try:
            mind = model_mind(
                model,
                role_prompt=role_prompt,
                prompts_dir=self.prompts_dir,
                scheduler=scheduler,
                prices=self.prices,
                structured=self.spec.structured,
                max_tokens=self.spec.max_tokens,
                temperature=self.spec.temperature,
                clock=self.clock,
                currency=self.budget.currency,
                rates=self.budget.rates,
                api=self.spec.api,
            )
        except ConfigError as exc:
            raise SpecError(self.where, str(exc)) from None
        self.made.append(mind)
        return mind


def _mind_timeout(spec: RunSpec, limits: Limits, where: str) -> float:
    """The mind timeout: every try the retry policy allows must fit in it (else they never
    run). Unset in the spec, it is what they need."""
    asked: float = derived_fields(spec.policy)["mind_timeout_s"]
    tries = limits.max_retries + 1
    need = 0.0
    fit = 0
    for k in range(1, tries + 1):
        need += limits.timeout_s
        if need <= asked:
            fit = k
        if k < tries:
            need += min(limits.backoff_s * 2 ** (k - 1), limits.max_backoff_s)
    if all(a.mind is not None for a in spec.agents):  # no model minds: nothing to fit
        return asked
    if "mind_timeout_s" not in spec.policy.model_fields_set:
        return max(asked, need)
    if fit < tries:
        raise SpecError(
            where,
            f"policy.mind_timeout_s = {asked:g} leaves time for {fit} of "
            f"the {tries} tries [scheduler] allows (timeout_s = {limits.timeout_s:g} each, "
            f"max_retries = {limits.max_retries}, with back-off): raise mind_timeout_s to at "
            f"least {need:g}, or lower timeout_s or max_retries",
        )
    return asked


def _resolver(name: ResolverName, policy: PolicyEntry, left: Any) -> Resolver:
    if name == "budgeter":
        return Budgeter(left=left, cost_fields=policy.budgeter_cost)
    if name == "priority":
        return PriorityByRole(ranks=dict(policy.ranks))
    return FirstByOrder()


def build_run(
    path: str | Path,
    *,
    model: str | None = None,
    clock: Clock | None = None,
    base_dir: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    served: bool = False,
    text: str | None = None,
) -> BuiltRun:
    """Load the spec at ``path`` and build its :class:`RunConfig`.

    ``model`` replaces the spec's default model (agents with their own ``model`` keep it).
    Model minds run on ``clock`` (use the :class:`~telic.clock.SystemClock`). Import paths
    and relative paths resolve from ``base_dir`` (default: the spec's directory).
    ``overrides`` replace fields of the spec (see :func:`load_spec`). The run's
    ``run.booted`` records ``{"spec": {"path", "model", "base", "overrides", "served"}}`` so
    that ``telic resume`` (or a server, for ``served`` runs) can rebuild it. ``text``, the
    spec file's content read elsewhere (a Ray cluster's driver), is built instead of the
    file and recorded too (``"text"``), so that any process can rebuild the run without it.
    """
    spec = load_spec(path, overrides, text=text)
    where = str(path)
    absolute = Path(path).resolve()
    base = absolute.parent if base_dir is None else Path(base_dir).resolve()
    default_model = model or spec.model
    for m in {model, spec.model, spec.explorer_model, *(a.model for a in spec.agents)}:
        if m is not None:
            parse_model(m)  # an unknown provider prefix fails before anything is made
    models = _Models(spec, base, clock, where)
    servers, mcp_tools = _mcp(spec, base, where)
    try:
        with _importable(base):
            config = _config(spec, models, default_model, where, mcp_tools)
    except BaseException:
        servers.clear()  # nothing was connected on a loop yet: nothing to close
        raise
    record: dict[str, Any] = {"path": str(absolute), "model": model}
    if base_dir is not None:
        record["base"] = str(base)
    if overrides:
        record["overrides"] = dict(overrides)
    if served:
        record["served"] = True
    if text is not None:
        record["text"] = text
    config.record = {"spec": record}
    if servers:
        config.record["mcp"] = {s.spec.name: s.record(mcp_tools) for s in servers}
    return BuiltRun(
        spec=spec, path=absolute, config=config, model=model, minds=models.made, servers=servers
    )


@dataclass(frozen=True, slots=True)
class RecordedSpec:
    """How a run was built from a spec, as its ledger records it (the latest counterfactual
    resume included)."""

    path: str
    model: str | None
    base_dir: str | None
    overrides: dict[str, Any]
    served: bool
    text: str | None = None
    """The spec's content, when the run recorded it (runs a Ray cluster hosts)."""


def recorded_spec(ledger: Any, run_id: str) -> RecordedSpec | None:
    """The spec ``run_id`` was booted from, or None if it was not booted from one.

    A counterfactual resume (``run.resumed`` with a ``counterfactual``) changes what the run
    goes on with: its model, instructions and policy apply to later resumes too.
    """
    booted = next(iter(ledger.read(run_id, 1, 1)), None)
    if booted is None or booted.kind != "run.booted":
        return None
    rec: Any = booted.data.get("config", {}).get("spec")
    if not isinstance(rec, dict):
        return None
    r = cast(dict[str, Any], rec)
    model: str | None = r.get("model")
    overrides: dict[str, Any] = dict(r.get("overrides") or {})
    for t in ledger.read(run_id):
        if t.kind == "run.resumed" and t.data.get("counterfactual"):
            change: dict[str, Any] = dict(t.data["counterfactual"])
            model = change.pop("model", model)
            overrides.update(change)
    return RecordedSpec(
        path=str(r["path"]),
        model=model,
        base_dir=r.get("base"),
        overrides=overrides,
        served=bool(r.get("served")),
        text=r.get("text"),
    )


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(value: str, where: str, server: str) -> str:
    """``${NAME}`` in ``value`` replaced by the environment variable NAME, which must be set."""

    def one(m: re.Match[str]) -> str:
        got = os.environ.get(m.group(1))
        if got is None:
            raise SpecError(
                where,
                f"[[mcp_servers]] {server!r}: a header names ${{{m.group(1)}}}, which is not "
                "set in the environment; export it",
            )
        return got

    return _ENV_REF.sub(one, value)


def _mcp(spec: RunSpec, base: Path, where: str) -> tuple[list[Any], list[Tool]]:
    """The spec's MCP servers (not yet connected on the run's loop) and their tools."""
    if not spec.mcp_servers:
        return [], []
    try:
        from telic.mcp import McpServerSpec, load
    except TelicError as exc:
        raise SpecError(where, str(exc)) from None
    specs: list[Any] = []
    for e in spec.mcp_servers:
        command = list(e.command or ())
        if command and command[0] == "python":  # the interpreter running telic (its venv)
            command[0] = sys.executable
        try:
            specs.append(
                McpServerSpec(
                    name=e.name,
                    command=tuple(command),
                    url=e.url,
                    env=dict(e.env),
                    cwd=str(base),
                    timeout_s=e.timeout_s,
                    connect_timeout_s=e.connect_timeout_s,
                    tools=None if e.tools is None else tuple(e.tools),
                    high_impact=tuple(e.high_impact),
                    idempotent=tuple(e.idempotent),
                    prefix=e.prefix,
                    headers={k: _expand(v, where, e.name) for k, v in e.headers.items()},
                )
            )
        except ConfigError as exc:
            raise SpecError(where, f"[[mcp_servers]] {exc}") from None
    try:
        return load(specs)
    except TelicError as exc:
        raise SpecError(where, f"[[mcp_servers]] {exc}") from None


def _config(
    spec: RunSpec,
    models: _Models,
    default_model: str | None,
    where: str,
    extra_tools: Sequence[Tool] = (),
) -> RunConfig:
    """Check and import everything first; model minds are made last (nothing to undo)."""
    tool_paths = [spec.tools] if isinstance(spec.tools, str) else list(spec.tools)
    tools: list[Tool] = []
    loaded_tools = [t for tp in tool_paths for t in _tools_from(tp, where)]
    for t in [*loaded_tools, *extra_tools]:
        if any(t.name == u.name for u in tools):
            raise SpecError(where, f"two tools are named {t.name!r}; rename one (or set prefix)")
        tools.append(t)
    known = sorted(t.name for t in tools)
    for name in spec.high_impact:
        if name not in known:
            raise SpecError(
                where,
                f"high_impact names tool {name!r}, which no tools entry provides "
                f"(known: {', '.join(known) or 'none'})",
            )
    tools = [
        dataclasses.replace(t, high_impact=True) if t.name in spec.high_impact else t for t in tools
    ]
    for name, needs in spec.resources.items():
        if name not in known:
            raise SpecError(
                where,
                f"resources names tool {name!r}, which no tools entry provides "
                f"(known: {', '.join(known) or 'none'})",
            )
        if any(t.name == name and t.source for t in tools):
            raise SpecError(
                where,
                f"resources.{name}: an MCP tool runs in its server, not as a Ray task; "
                "only Python tools take resources",
            )
        try:
            tools = [
                dataclasses.replace(t, resources={**t.resources, **needs}) if t.name == name else t
                for t in tools
            ]
        except ConfigError as exc:
            raise SpecError(where, f"resources.{name}: {exc}") from None
    drafts = [(a, derived_fields(a)) for a in spec.agents]  # the AgentSpec fields of each
    names: list[str] = [f["name"] for _, f in drafts]
    for n in names:
        if names.count(n) > 1:
            raise SpecError(where, f"two agents are named {n!r}; agent names must be unique")
    teams = [Team(**derived_fields(t)) for t in spec.teams]
    try:  # the tree before any mind is loaded or made
        plan([(f["name"], f["role"]) for _, f in drafts], teams)
    except TreeInvalid as exc:
        raise SpecError(where, str(exc)) from None
    loaded: dict[str, Mind] = {}
    for a, f in drafts:
        name: str = f["name"]
        for t in f["tools"]:
            if t not in known:
                raise SpecError(
                    where,
                    f"agent {name!r} lists tool {t!r}, which no tools entry provides "
                    f"(known: {', '.join(known) or 'none'})",
                )
        if a.mind is not None and a.model is not None:
            raise SpecError(where, f"agent {name!r} has both mind and model; keep one")
        if a.mind is not None and f["resources"]:
            raise SpecError(
                where,
                f"agent {name!r} has a mind and resources: resources place model calls, "
                "and only a model mind makes them; give the work that needs them to a tool "
                "with resources",
            )
        if a.mind is not None:
            loaded[name] = _mind_from(a.mind, name, where)
        elif (a.model or default_model) is None:
            raise SpecError(
                where,
                f'agent {name!r} has no model: set model = "provider:model" in the spec '
                "(or on the agent), or pass --model",
            )

    p = spec.policy
    left = None
    if p.budgeter_left is not None:
        left = _callable(p.budgeter_left, what="policy.budgeter_left", where=where)
    fields = derived_fields(p)
    fields["mind_timeout_s"] = models.mind_timeout_s
    policy = Policy(
        **fields,
        resolver=_resolver(p.resolver, p, left),
        resolvers={k: _resolver(v, p, left) for k, v in p.resolvers.items()},
    )

    explorer: Callable[[str, AgentSpec], Mind] | None = None
    if spec.explorer is not None:
        explorer = _callable(spec.explorer, what="explorer", where=where)
    else:
        explorer_model = spec.explorer_model or default_model
        if explorer_model is not None:
            chosen = explorer_model

            def make_explorer(question: str, parent: AgentSpec) -> Mind:
                return models.make(chosen, role="explorer")

            explorer = make_explorer

    extra: dict[str, Any] = {}
    if spec.return_condition is not None:
        extra["return_condition"] = _callable(
            spec.return_condition, what="return_condition", where=where
        )
        extra["return_description"] = (
            spec.return_description or f"the return condition {spec.return_condition} holds"
        )
    elif spec.return_description is not None:
        raise SpecError(where, "return_description without return_condition: add the condition")
    if spec.progress is not None:
        extra["progress"] = cast(
            Callable[[RunState], float], _callable(spec.progress, what="progress", where=where)
        )
    if spec.artifacts is not None:
        extra["artifacts"] = cast(
            Callable[[RunState], Sequence[Artifact]],
            _callable(spec.artifacts, what="artifacts", where=where),
        )

    agents: list[AgentSpec] = []
    for a, f in drafts:
        mind = loaded.get(f["name"]) or models.make(
            cast(str, a.model or default_model), role=f["role"], role_prompt=a.prompt
        )
        budget = AgentBudget(**derived_fields(a.budget)) if a.budget is not None else None
        try:
            agents.append(AgentSpec(**f, mind=mind, budget=budget))
        except ConfigError as exc:
            raise SpecError(where, str(exc)) from None
    config = RunConfig(
        goal=spec.goal,
        agents=agents,
        tools=tools,
        budget=models.budget,
        policy=policy,
        explorer=explorer,
        **derived_fields(spec),
        teams=teams,
        seed=spec.seed,
        **extra,
    )
    try:
        config.validate()
    except ConfigError as exc:
        raise SpecError(where, str(exc)) from None
    return config
