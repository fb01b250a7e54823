"""Run specs: a swarm described in a TOML file, for ``telic run SPEC [--model MODEL]``.

A spec names the goal, the agents (role, tools, restart, priority, and a model or a mind by
import path), the tools (import paths), the budget, the policy, and the run's functions (return
condition, progress, artifacts) by import path. :func:`load_spec` reads and validates it;
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
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError

import telic.prompts
from telic.clock import Clock
from telic.errors import ConfigError, SpecError, TelicError
from telic.kernel import AgentSpec, Artifact, Budget, RunConfig
from telic.minds.base import Mind
from telic.minds.factory import model_mind, shared_scheduler
from telic.minds.model import ModelMind
from telic.minds.providers import parse_model, resolve_provider
from telic.minds.scheduler import Limits, Scheduler
from telic.policy import Budgeter, FirstByOrder, Policy, PriorityByRole, Resolver
from telic.reducer import State
from telic.tools import Tool

__all__ = [
    "AgentEntry",
    "BudgetEntry",
    "BuiltRun",
    "McpServerEntry",
    "PolicyEntry",
    "RecordedSpec",
    "RunSpec",
    "build_run",
    "load_object",
    "load_spec",
    "recorded_spec",
]

ResolverName = Literal["budgeter", "priority", "first"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class AgentEntry(_Strict):
    """One ``[[agents]]`` table."""

    name: str = Field(min_length=1)
    role: str = Field(min_length=1)
    tools: list[str] = Field(default_factory=list[str])
    """Names of the tools this agent may call (provided by the spec's ``tools``)."""
    restart: Literal["permanent", "transient", "temporary"] = "permanent"
    priority: int = 0
    model: str | None = None
    """This agent's model string; by default the spec's ``model`` (or ``--model``)."""
    mind: str | None = None
    """An import path (``module:name``) to a Mind, or to a zero-argument factory of one,
    instead of a model."""
    prompt: str | None = None
    """A role prompt replacing the shipped (or ``prompts_dir``) one, for a model mind."""


class BudgetEntry(_Strict):
    """The ``[budget]`` table; an absent dimension is unlimited."""

    tokens: float | None = Field(default=None, ge=0)
    cost: float | None = Field(default=None, ge=0)
    tool_calls: float | None = Field(default=None, ge=0)
    ticks: float | None = Field(default=None, ge=0)
    wall_s: float | None = Field(default=None, ge=0)
    currency: str = "USD"
    rates: dict[str, float] = Field(default_factory=dict[str, float])
    """Units of ``currency`` per unit of another currency, e.g. ``{ USD = 0.80 }`` for a CHF
    budget: model prices (USD) are converted at these rates; a mismatch without one is an
    error."""


class PolicyEntry(_Strict):
    """The ``[policy]`` table (see :class:`telic.policy.Policy`)."""

    exploration_threshold: float = Field(default=0.5, ge=0, le=1)
    stall_ticks: int = Field(default=5, ge=1)
    loop_repeats: int = Field(default=3, ge=2)
    warn_at: float = Field(default=0.8, gt=0, le=1)
    approval_timeout_s: float | None = Field(default=None, gt=0)
    """How long a high-impact call waits for a decision; none: until one comes."""
    mind_timeout_s: float = Field(default=60.0, gt=0)
    max_proposal_bytes: int = Field(default=64 * 1024, ge=256)
    fail_agent_on_tool_error: bool = True
    resolver: ResolverName = "first"
    """Conflict resolution for resources without an entry in ``resolvers``."""
    resolvers: dict[str, ResolverName] = Field(default_factory=dict[str, ResolverName])
    """By resource: an exact name or a prefix ending in ``*`` (``"plan:*" = "budgeter"``)."""
    budgeter_left: str | None = None
    """Import path of ``(state) -> float``: what the budgeter policy may still spend."""
    ranks: dict[str, int] = Field(default_factory=dict[str, int])
    """Role ranks for the ``priority`` resolver (higher wins)."""


class McpServerEntry(_Strict):
    """One ``[[mcp_servers]]`` table: an MCP server whose tools the agents may use."""

    name: str = Field(min_length=1)
    command: list[str] | None = Field(default=None, min_length=1)
    """A stdio server's command and arguments (run in the spec's directory)."""
    url: str | None = None
    """A streamable HTTP server's URL."""
    env: dict[str, str] = Field(default_factory=dict[str, str])
    timeout_s: float = Field(default=30.0, gt=0)
    """The kernel's timeout of each call."""
    connect_timeout_s: float = Field(default=30.0, gt=0)
    tools: list[str] | None = None
    """Only these tools of the server (default: all)."""
    high_impact: list[str] = Field(default_factory=list[str])
    """Tools that need approval besides those marked destructiveHint."""
    idempotent: list[str] = Field(default_factory=list[str])
    prefix: str = ""
    """Prepended to the server's tool names."""
    headers: dict[str, str] = Field(default_factory=dict[str, str])
    """HTTP headers of a url server; ``${NAME}`` in a value is the environment variable NAME
    (keep tokens out of the spec: ``Authorization = "Bearer ${TELIC_TOKEN}"``)."""


class RunSpec(_Strict):
    """A whole spec file."""

    goal: str = Field(min_length=1)
    model: str | None = None
    """The default model of every agent without its own ``model`` or ``mind``."""
    agents: list[AgentEntry] = Field(min_length=1)
    tools: str | list[str] = Field(default_factory=list[str])
    """Import paths, each to a Tool, a list of Tools, or a zero-argument factory of either."""
    high_impact: list[str] = Field(default_factory=list[str])
    """Names of tools whose calls wait for a human decision (besides those marked so)."""
    mcp_servers: list[McpServerEntry] = Field(default_factory=list[McpServerEntry])
    """MCP servers whose tools join ``tools`` (needs ``telic[mcp]``)."""
    budget: BudgetEntry = Field(default_factory=BudgetEntry)
    policy: PolicyEntry = Field(default_factory=PolicyEntry)
    scheduler: dict[str, Any] | None = None
    """Limits of the model endpoints (:class:`telic.minds.Limits` fields)."""
    return_condition: str | None = None
    return_description: str | None = None
    progress: str | None = None
    artifacts: str | None = None
    explorer: str | None = None
    """Import path of ``(question, parent AgentSpec) -> Mind``; by default a model mind."""
    explorer_model: str | None = None
    """The explorers' model (default: the spec's model)."""
    strategy: Literal["one_for_one", "one_for_all", "rest_for_one"] = "one_for_one"
    intensity: int = Field(default=3, ge=0)
    period_s: float = Field(default=5.0, gt=0)
    seed: int | None = None
    structured: Literal["tool", "json"] = "tool"
    api: Literal["chat", "responses"] = "chat"
    """For OpenAI-compatible models: Chat Completions or the Responses API."""
    max_tokens: int = Field(default=1024, ge=1)
    temperature: float | None = Field(default=None, ge=0)
    prompts_dir: str | None = None
    """A directory of role prompts (``<role>.md``), relative to the spec file."""
    instructions: str | None = None
    """Text appended to every model agent's role prompt (explorers included): what the run
    expects of the plan, for example."""
    prices: str | dict[str, Any] | None = None
    """A price table: a TOML path relative to the spec file, or an inline table."""


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


def load_spec(path: str | Path, overrides: Mapping[str, Any] | None = None) -> RunSpec:
    """Read and validate the spec at ``path`` (no imports yet: see :func:`build_run`).

    A ``.json`` file holds the same tables as JSON. ``overrides`` replace top-level fields
    (``policy`` is merged field by field), as a counterfactual resume asks.
    """
    where = str(path)
    p = Path(path)
    if not p.is_file():
        problem = "it is a directory" if p.is_dir() else "no such file"
        raise SpecError(where, f"{problem}; pass the path of a TOML run spec")
    data: Any
    try:
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
                currency=self.spec.budget.currency,
                rates=self.spec.budget.rates,
                api=self.spec.api,
            )
        except ConfigError as exc:
            raise SpecError(self.where, str(exc)) from None
        self.made.append(mind)
        return mind


def _mind_timeout(spec: RunSpec, limits: Limits, where: str) -> float:
    """The mind timeout: every try the retry policy allows must fit in it (else they never
    run). Unset in the spec, it is what they need."""
    tries = limits.max_retries + 1
    need = 0.0
    fit = 0
    for k in range(1, tries + 1):
        need += limits.timeout_s
        if need <= spec.policy.mind_timeout_s:
            fit = k
        if k < tries:
            need += min(limits.backoff_s * 2 ** (k - 1), limits.max_backoff_s)
    if all(a.mind is not None for a in spec.agents):  # no model minds: nothing to fit
        return spec.policy.mind_timeout_s
    if "mind_timeout_s" not in spec.policy.model_fields_set:
        return max(spec.policy.mind_timeout_s, need)
    if fit < tries:
        raise SpecError(
            where,
            f"policy.mind_timeout_s = {spec.policy.mind_timeout_s:g} leaves time for {fit} of "
            f"the {tries} tries [scheduler] allows (timeout_s = {limits.timeout_s:g} each, "
            f"max_retries = {limits.max_retries}, with back-off): raise mind_timeout_s to at "
            f"least {need:g}, or lower timeout_s or max_retries",
        )
    return spec.policy.mind_timeout_s


def _resolver(name: ResolverName, policy: PolicyEntry, left: Any) -> Resolver:
    if name == "budgeter":
        return Budgeter(left=left)
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
) -> BuiltRun:
    """Load the spec at ``path`` and build its :class:`RunConfig`.

    ``model`` replaces the spec's default model (agents with their own ``model`` keep it).
    Model minds run on ``clock`` (use the :class:`~telic.clock.SystemClock`). Import paths
    and relative paths resolve from ``base_dir`` (default: the spec's directory).
    ``overrides`` replace fields of the spec (see :func:`load_spec`). The run's
    ``run.booted`` records ``{"spec": {"path", "model", "base", "overrides", "served"}}`` so
    that ``telic resume`` (or a server, for ``served`` runs) can rebuild it.
    """
    spec = load_spec(path, overrides)
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
    names = [a.name for a in spec.agents]
    for n in names:
        if names.count(n) > 1:
            raise SpecError(where, f"two agents are named {n!r}; agent names must be unique")
    loaded: dict[str, Mind] = {}
    for a in spec.agents:
        for t in a.tools:
            if t not in known:
                raise SpecError(
                    where,
                    f"agent {a.name!r} lists tool {t!r}, which no tools entry provides "
                    f"(known: {', '.join(known) or 'none'})",
                )
        if a.mind is not None and a.model is not None:
            raise SpecError(where, f"agent {a.name!r} has both mind and model; keep one")
        if a.mind is not None:
            loaded[a.name] = _mind_from(a.mind, a.name, where)
        elif (a.model or default_model) is None:
            raise SpecError(
                where,
                f'agent {a.name!r} has no model: set model = "provider:model" in the spec '
                "(or on the agent), or pass --model",
            )

    p = spec.policy
    left = None
    if p.budgeter_left is not None:
        left = _callable(p.budgeter_left, what="policy.budgeter_left", where=where)
    policy = Policy(
        max_proposal_bytes=p.max_proposal_bytes,
        loop_repeats=p.loop_repeats,
        stall_ticks=p.stall_ticks,
        resolver=_resolver(p.resolver, p, left),
        resolvers={k: _resolver(v, p, left) for k, v in p.resolvers.items()},
        exploration_threshold=p.exploration_threshold,
        warn_at=p.warn_at,
        approval_timeout_s=p.approval_timeout_s,
        fail_agent_on_tool_error=p.fail_agent_on_tool_error,
        mind_timeout_s=models.mind_timeout_s,
    )
    b = spec.budget
    budget = Budget(
        tokens=b.tokens,
        cost=b.cost,
        tool_calls=b.tool_calls,
        ticks=b.ticks,
        wall_s=b.wall_s,
        currency=b.currency,
        rates=dict(b.rates),
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
            Callable[[State], float], _callable(spec.progress, what="progress", where=where)
        )
    if spec.artifacts is not None:
        extra["artifacts"] = cast(
            Callable[[State], Sequence[Artifact]],
            _callable(spec.artifacts, what="artifacts", where=where),
        )

    agents = [
        AgentSpec(
            name=a.name,
            role=a.role,
            mind=loaded.get(a.name)
            or models.make(cast(str, a.model or default_model), role=a.role, role_prompt=a.prompt),
            tools=tuple(a.tools),
            restart=a.restart,
            priority=a.priority,
        )
        for a in spec.agents
    ]
    config = RunConfig(
        goal=spec.goal,
        agents=agents,
        tools=tools,
        budget=budget,
        policy=policy,
        explorer=explorer,
        strategy=spec.strategy,
        intensity=spec.intensity,
        period_s=spec.period_s,
        seed=spec.seed,
        **extra,
    )
    try:
        config.validate()
    except ConfigError as exc:
        raise SpecError(where, str(exc)) from None
    return config
