"""The tables of a run spec, as pydantic models that validate them.

The entries that configure a kernel object are derived from it: ``[policy]`` from
:class:`~telic.policy.Policy`, ``[budget]`` from :class:`~telic.kernel.Budget`, each
``[[agents]]`` table from :class:`~telic.kernel.AgentSpec` (its ``budget`` table from
:class:`~telic.kernel.AgentBudget`), each ``[[teams]]`` table from
:class:`~telic.kernel.Team`, and the root supervisor's ``strategy``, ``intensity`` and
``period_s`` from :class:`~telic.kernel.RunConfig`. Their fields, defaults, bounds (the
``annotated_types`` in the field types) and descriptions (the field docstrings) are read from
that class, so each is declared once. What a TOML file cannot hold (a mind object, a resolver
object) is replaced by what names it (an import path, a resolver name), declared here.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import textwrap
from collections.abc import Collection
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model

from telic.kernel import AgentBudget, AgentSpec, Budget, RunConfig, Team
from telic.policy import Policy
from telic.policy.conflicts import COST_FIELDS

__all__ = [
    "AgentBudgetEntry",
    "AgentEntry",
    "BudgetEntry",
    "McpServerEntry",
    "PolicyEntry",
    "ResolverName",
    "RunSpec",
    "TeamEntry",
    "derived_fields",
]

ResolverName = Literal["budgeter", "priority", "first"]

_M = TypeVar("_M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, use_attribute_docstrings=True
    )


@cache
def _field_docs(cls: type) -> dict[str, str]:
    """The docstrings under a class's fields (as ``use_attribute_docstrings`` reads them)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):  # no source (a frozen build): no descriptions
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


def _derive(
    source: type,
    base: type[_M],
    *,
    name: str,
    exclude: Collection[str] = (),
    only: Collection[str] | None = None,
) -> type[_M]:
    """``base`` with every field of the dataclass ``source`` that ``base`` does not declare
    itself (nor ``exclude`` names; only those ``only`` names, when given): same type, bounds,
    default and description."""
    hints = get_type_hints(source, include_extras=True)
    docs = _field_docs(source)
    own = base.model_fields
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(source):
        if f.name in own or f.name in exclude or (only is not None and f.name not in only):
            continue
        if f.default is not dataclasses.MISSING:
            info = Field(default=f.default, description=docs.get(f.name))
        elif f.default_factory is not dataclasses.MISSING:
            info = Field(default_factory=f.default_factory, description=docs.get(f.name))
        else:
            info = Field(description=docs.get(f.name))
        fields[f.name] = (hints[f.name], info)
    model = create_model(name, __base__=base, __module__=__name__, **fields)
    model.__doc__ = base.__doc__
    _DERIVED[model] = tuple(fields)
    return model


_DERIVED: dict[type[BaseModel], tuple[str, ...]] = {}


def derived_fields(entry: BaseModel) -> dict[str, Any]:
    """The values of ``entry``'s derived fields, by name: keyword arguments for the class it
    was derived from (the fields it declares itself, such as a resolver's name, are not)."""
    return {k: getattr(entry, k) for k in _DERIVED[type(entry)]}


class _AgentBudgetOwn(_Strict):
    """An agent's ``budget`` table (the fields of :class:`telic.kernel.AgentBudget`); an absent
    dimension is unlimited for the agent (the run's ``[budget]`` still applies)."""


if TYPE_CHECKING:
    AgentBudgetEntry = _AgentBudgetOwn
else:
    AgentBudgetEntry = _derive(AgentBudget, _AgentBudgetOwn, name="AgentBudgetEntry")


class _AgentOwn(_Strict):
    """One ``[[agents]]`` table (the fields of :class:`telic.kernel.AgentSpec`, and how to make
    its mind)."""

    budget: AgentBudgetEntry | None = None
    """This agent's own limits (``tool_calls``, ``model_calls``, ``tokens``, ``cost``), on top
    of the run's ``[budget]``."""

    model: str | None = None
    """This agent's model string; by default the spec's ``model`` (or ``--model``)."""
    mind: str | None = None
    """An import path (``module:name``) to a Mind, or to a zero-argument factory of one,
    instead of a model."""
    prompt: str | None = None
    """A role prompt replacing the shipped (or ``prompts_dir``) one, for a model mind."""


class _BudgetOwn(_Strict):
    """The ``[budget]`` table (the fields of :class:`telic.kernel.Budget`); an absent dimension
    is unlimited. A budget in another currency than the model prices' (USD) needs ``rates``,
    e.g. ``{ USD = 0.80 }`` for a CHF budget."""


class _TeamOwn(_Strict):
    """One ``[[teams]]`` table (the fields of :class:`telic.kernel.Team`): a supervisor of the
    agents with its ``roles`` (or named in ``agents``) and of the ``teams`` it lists."""


class _PolicyOwn(_Strict):
    """The ``[policy]`` table (the fields of :class:`telic.policy.Policy` a TOML file can
    hold, with resolvers by name)."""

    resolver: ResolverName = "first"
    """Conflict resolution for resources without an entry in ``resolvers``."""
    resolvers: dict[str, ResolverName] = Field(default_factory=dict[str, ResolverName])
    """By resource: an exact name or a prefix ending in ``*`` (``"plan:*" = "budgeter"``)."""
    budgeter_left: str | None = None
    """Import path of ``(state) -> float``: what the budgeter policy may still spend."""
    budgeter_cost: tuple[Annotated[str, Field(min_length=1)], ...] = Field(
        default=COST_FIELDS, min_length=1
    )
    """Where the budgeter reads a candidate's cost in its proposed value when the proposal
    states none: the first of these fields that holds a number."""
    ranks: dict[str, int] = Field(default_factory=dict[str, int])
    """Role ranks for the ``priority`` resolver (higher wins)."""


# Statically each entry is its hand-written part (read the derived fields with
# derived_fields); at run time it holds the derived fields too.
if TYPE_CHECKING:
    AgentEntry = _AgentOwn
    BudgetEntry = _BudgetOwn
    PolicyEntry = _PolicyOwn
    TeamEntry = _TeamOwn
else:
    AgentEntry = _derive(AgentSpec, _AgentOwn, name="AgentEntry")
    BudgetEntry = _derive(Budget, _BudgetOwn, name="BudgetEntry")
    TeamEntry = _derive(Team, _TeamOwn, name="TeamEntry")
    PolicyEntry = _derive(Policy, _PolicyOwn, name="PolicyEntry", exclude=("extra", "verifier"))


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


class _RunOwn(_Strict):
    """A whole spec file (with the root supervisor's settings of
    :class:`telic.kernel.RunConfig`: ``strategy``, ``intensity`` and ``period_s``)."""

    goal: str = Field(min_length=1)
    model: str | None = None
    """The default model of every agent without its own ``model`` or ``mind``."""
    agents: list[AgentEntry] = Field(min_length=1)
    teams: list[TeamEntry] = Field(default_factory=list[TeamEntry])
    """Supervisors of their own for groups of agents (by default every agent is a child of
    the root supervisor, whose settings are ``strategy``, ``intensity`` and ``period_s``)."""
    tools: str | list[str] = Field(default_factory=list[str])
    """Import paths, each to a Tool, a list of Tools, or a zero-argument factory of either."""
    high_impact: list[str] = Field(default_factory=list[str])
    """Names of tools whose calls wait for a human decision (besides those marked so)."""
    resources: dict[str, dict[str, float]] = Field(default_factory=dict[str, dict[str, float]])
    """By tool name, what its calls need on a Ray cluster (``render = { num_gpus = 1 }``):
    added to the tool's own ``resources`` (see :attr:`telic.tools.Tool.resources`)."""
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


ROOT_SUPERVISOR = ("strategy", "intensity", "period_s")
"""The fields of :class:`telic.kernel.RunConfig` a spec's top level takes as they are."""

if TYPE_CHECKING:
    RunSpec = _RunOwn
else:
    RunSpec = _derive(RunConfig, _RunOwn, name="RunSpec", only=ROOT_SUPERVISOR)
