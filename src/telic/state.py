"""The run state, typed: what minds, policy, the kernel and the CLI read by attribute.

The reducer (:mod:`telic.reducer`) folds a run's transitions into a plain JSON object, the
*JSON form*: what the state hash covers, what snapshots store and what the API returns. A
:class:`RunState` is a typed, read-only face over that JSON form, not a copy of it: each
attribute reads its key when it is read (``state.agents["a"].status`` is
``json["agents"]["a"]["status"]``), a nested object comes back as its own typed record, and
:attr:`Record.json` hands the JSON form back unchanged. So wrapping costs one small object,
the JSON form stays byte for byte what the reducer made, and there is no second encoding of
the state to keep in step with the first.

Every key the reducer writes is an attribute here, with its type; ``tests/test_state.py``
checks, for generated transition sequences, that reading every attribute gives back exactly
the reducer's JSON form. A record never changes the state: its attributes refuse assignment
(:class:`~telic.errors.ReadOnly`), collections are typed ``Mapping`` and ``Sequence``, and
over a read-only view (:mod:`telic.frozen`, what minds and user policy get) the values
themselves refuse every change too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Generic, Literal, NoReturn, TypeVar, overload

from telic.errors import ReadOnly
from telic.kinds import StrategyName

__all__ = [
    "SCHEMA",
    "AgentBudgetState",
    "AgentSpent",
    "AgentState",
    "Artifact",
    "Attribute",
    "Belief",
    "Exploration",
    "Field",
    "ForkedFrom",
    "MaybeSub",
    "Observation",
    "PendingApproval",
    "PendingTool",
    "PlanItem",
    "Record",
    "Restore",
    "RootSupervisor",
    "RosterEntry",
    "Rows",
    "RunState",
    "Spent",
    "Sub",
    "Supervision",
    "Table",
    "Tables",
    "TeamSupervisor",
    "Valid",
    "attributes",
]

T = TypeVar("T")
R = TypeVar("R", bound="Record")

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class Record:
    """A typed, read-only face over one JSON object of the state (see the module docstring)."""

    __slots__ = ("_json", "_kids")
    _json: Mapping[str, Any]
    _kids: dict[str, Any] | None
    """The nested records and tables read so far, kept while their JSON object is the same
    (a record over the kernel's live state is read every tick: this spares the allocations)."""

    def __init__(self, json: Mapping[str, Any]) -> None:
        self._json = json
        self._kids = None

    @property
    def json(self) -> Mapping[str, Any]:
        """The JSON form: the reducer's own object (read-only when the record was made over a
        read-only view)."""
        return self._json

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        theirs: Mapping[str, Any] = other._json
        return type(self) is type(other) and bool(self._json == theirs)

    __hash__ = None  # pyright: ignore[reportAssignmentType]  # over a changing JSON object

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self._json)!r})"


SCHEMA: dict[type[Record], dict[str, Attribute]] = {}
"""Each record class's own attributes, by name (see :func:`attributes`)."""


def attributes(cls: type[Record]) -> dict[str, Attribute]:
    """Every attribute of the record class ``cls`` (its bases' too), by name."""
    out: dict[str, Attribute] = {}
    for klass in reversed(cls.__mro__):
        out.update(SCHEMA.get(klass, {}))  # pyright: ignore[reportArgumentType,reportCallIssue]
    return out


class Attribute:
    """How a record reads one JSON key of the same name.

    Declared as a class attribute (``tick = Field[int]()``), which gives its type; when the
    class is made it is replaced by a plain ``property`` that reads the key (a C-level
    descriptor calling one small function: about half the cost of a Python ``__get__``),
    which refuses assignment with :class:`~telic.errors.ReadOnly`. :data:`SCHEMA` keeps it.
    """

    key: str

    def __set_name__(self, owner: type[Record], name: str) -> None:
        self.key = name
        SCHEMA.setdefault(owner, {})[name] = self

        def refuse(record: Record, value: object = None) -> NoReturn:
            raise ReadOnly(f"this {type(record).__name__}", f"setting or deleting {name!r}")

        setattr(owner, name, property(self.getter(), refuse, refuse))

    def getter(self) -> Any:
        """The function of a record that reads this attribute."""
        raise NotImplementedError


def _kept(key: str, make: Callable[[Any], Any]) -> Callable[[Record], Any]:
    """A reader of the nested ``key`` as ``make`` wraps it, kept on the record while the
    JSON object under ``key`` is the same one."""

    def read(record: Record) -> Any:
        value = record._json[key]  # pyright: ignore[reportPrivateUsage]
        kids = record._kids  # pyright: ignore[reportPrivateUsage]
        if kids is None:
            kids = record._kids = {}  # pyright: ignore[reportPrivateUsage]
        kid = kids.get(key)
        if kid is None or kid._json is not value:  # pyright: ignore[reportPrivateUsage]
            kid = kids[key] = make(value)
        return kid

    return read


class Field(Attribute, Generic[T]):
    """An attribute of a record: the value of the JSON key of the same name, as it is."""

    @overload
    def __get__(self, record: None, owner: type[Record]) -> Field[T]: ...
    @overload
    def __get__(self, record: Record, owner: type[Record]) -> T: ...
    def __get__(self, record: Record | None, owner: type[Record]) -> Field[T] | T:
        raise NotImplementedError  # replaced by a property (see Attribute)

    def getter(self) -> Any:
        key = self.key

        def read(record: Record) -> Any:
            return record._json[key]  # pyright: ignore[reportPrivateUsage]

        return read


class Sub(Attribute, Generic[R]):
    """An attribute holding one nested object, as its typed record."""

    def __init__(self, of: type[R]) -> None:
        self.of = of

    @overload
    def __get__(self, record: None, owner: type[Record]) -> Sub[R]: ...
    @overload
    def __get__(self, record: Record, owner: type[Record]) -> R: ...
    def __get__(self, record: Record | None, owner: type[Record]) -> Sub[R] | R:
        raise NotImplementedError  # replaced by a property (see Attribute)

    def getter(self) -> Any:
        return _kept(self.key, self.of)


class MaybeSub(Attribute, Generic[R]):
    """An attribute holding a nested object or null (or, for a key only some states have,
    nothing), as its typed record or None."""

    def __init__(self, of: type[R]) -> None:
        self.of = of

    @overload
    def __get__(self, record: None, owner: type[Record]) -> MaybeSub[R]: ...
    @overload
    def __get__(self, record: Record, owner: type[Record]) -> R | None: ...
    def __get__(self, record: Record | None, owner: type[Record]) -> MaybeSub[R] | R | None:
        raise NotImplementedError  # replaced by a property (see Attribute)

    def getter(self) -> Any:
        key, of = self.key, self.of

        def read(record: Record) -> Any:
            value = record._json.get(key)  # pyright: ignore[reportPrivateUsage]
            return None if value is None else of(value)

        return read


class Table(Mapping[str, R]):
    """A JSON object of records by name (``state.agents``, ``state.plan``, ...): a read-only
    mapping whose values come out as typed records."""

    __slots__ = ("_json", "_made", "_of")

    def __init__(self, json: Mapping[str, Mapping[str, Any]], of: type[R]) -> None:
        self._json = json
        self._of = of
        self._made: dict[str, R] = {}

    @property
    def json(self) -> Mapping[str, Mapping[str, Any]]:
        """The JSON form."""
        return self._json

    def __getitem__(self, key: str) -> R:
        value = self._json[key]
        made = self._made.get(key)
        if made is None or made._json is not value:  # pyright: ignore[reportPrivateUsage]
            made = self._make(key, value)
        return made

    def get(self, key: str, default: None = None) -> R | None:  # pyright: ignore[reportIncompatibleMethodOverride]
        value = self._json.get(key)
        if value is None:
            return None
        made = self._made.get(key)
        if made is None or made._json is not value:  # pyright: ignore[reportPrivateUsage]
            made = self._make(key, value)
        return made

    def _make(self, key: str, value: Mapping[str, Any]) -> R:
        made = self._made
        if len(made) > 2 * len(self._json) + 8:  # entries gone from the JSON (done calls)
            made.clear()
        record = made[key] = self._of(value)
        return record

    def __iter__(self) -> Iterator[str]:
        return iter(self._json)

    def __len__(self) -> int:
        return len(self._json)

    def __contains__(self, key: object) -> bool:
        return key in self._json

    def __repr__(self) -> str:
        return f"Table[{self._of.__name__}]({dict(self._json)!r})"


class Tables(Attribute, Generic[R]):
    """An attribute holding a :class:`Table` of records. An ``optional`` one is a key only
    some states have (to keep the others' JSON form unchanged): absent, it reads as an empty
    table."""

    def __init__(self, of: type[R], *, optional: bool = False) -> None:
        self.of = of
        self.optional = optional

    @overload
    def __get__(self, record: None, owner: type[Record]) -> Tables[R]: ...
    @overload
    def __get__(self, record: Record, owner: type[Record]) -> Table[R]: ...
    def __get__(self, record: Record | None, owner: type[Record]) -> Tables[R] | Table[R]:
        raise NotImplementedError  # replaced by a property (see Attribute)

    def getter(self) -> Any:
        key, of = self.key, self.of
        kept = _kept(key, lambda json: Table(json, of))
        if not self.optional:
            return kept

        def read(record: Record) -> Any:
            if key in record._json:  # pyright: ignore[reportPrivateUsage]
                return kept(record)
            return Table(_EMPTY, of)

        return read


class Rows(Attribute, Generic[R]):
    """An attribute holding a JSON array of objects, as a tuple of typed records."""

    def __init__(self, of: type[R]) -> None:
        self.of = of

    @overload
    def __get__(self, record: None, owner: type[Record]) -> Rows[R]: ...
    @overload
    def __get__(self, record: Record, owner: type[Record]) -> tuple[R, ...]: ...
    def __get__(self, record: Record | None, owner: type[Record]) -> Rows[R] | tuple[R, ...]:
        raise NotImplementedError  # replaced by a property (see Attribute)

    def getter(self) -> Any:
        key, of = self.key, self.of

        def read(record: Record) -> Any:
            return tuple(map(of, record._json[key]))  # pyright: ignore[reportPrivateUsage]

        return read


# -- the records ----------------------------------------------------------------------------


class Observation(Record):
    """Something an agent saw: a tool's result, a failure, a rejection, a message."""

    __slots__ = ()
    seq = Field[int]()
    """The transition it came from."""
    source = Field[str]()
    """``tool:NAME``, ``failure``, ``policy``, ``message:SENDER`` or an observation's own."""
    content = Field[Any]()


class AgentState(Record):
    """One agent of the run."""

    __slots__ = ()
    role = Field[str]()
    status = Field[str]()
    """``running``, ``failed``, ``terminated`` or ``killed``."""
    restarts = Field[int]()
    supervisor = Field[str]()
    """``root`` or the team that supervises it."""
    temporary = Field[bool]()
    """An explorer: spawned for one question, never restarted."""
    parent = Field[str | None]()
    """An explorer's parent agent."""
    question = Field[str | None]()
    """An explorer's question."""
    tools = Field[Sequence[str]]()
    """The tools it may call."""
    observations = Rows(Observation)
    """Its most recent observations (:data:`telic.reducer.OBSERVATION_WINDOW`)."""
    recent = Field[Sequence[str]]()
    """Fingerprints of its most recent proposals (the loop guard's)."""
    rejections = Field[int]()
    hallucinations = Field[int]()


class Belief(Record):
    """A claim the run holds, with who made it and its evidence."""

    __slots__ = ()
    value = Field[Any]()
    agent = Field[str]()
    evidence = Field[Sequence[int]]()
    """Sequence numbers of the observations that support it."""
    seq = Field[int]()


class PlanItem(Record):
    """One item of the run's plan."""

    __slots__ = ()
    value = Field[Any]()
    agent = Field[str]()
    seq = Field[int]()


class PendingTool(Record):
    """A tool call started and not yet ended (what a resume finds in flight)."""

    __slots__ = ()
    agent = Field[str]()
    tool = Field[str]()
    args = Field[Mapping[str, Any]]()
    idempotent = Field[bool]()
    attempt = Field[int]()
    seq = Field[int]()


class PendingApproval(Record):
    """A high-impact call waiting for a person's decision."""

    __slots__ = ()
    agent = Field[str]()
    tool = Field[str]()
    seq = Field[int]()


class Exploration(Record):
    """An explorer, by name: the question it was spawned on and for whom."""

    __slots__ = ()
    question = Field[str]()
    agent = Field[str]()
    proposal = Field[int]()
    seq = Field[int]()


class Artifact(Record):
    """An artifact the run recorded (its content is a blob of the ledger)."""

    __slots__ = ()
    media_type = Field[str]()
    seq = Field[int]()


class Restore(Record):
    """A restore of memory, beliefs and plan to an earlier valid tick."""

    __slots__ = ()
    target = Field[int]()
    """The sequence number restored to."""
    tick = Field[int]()
    seq = Field[int]()


class Spent(Record):
    """What the run has used, per budget dimension."""

    __slots__ = ()
    tokens = Field[int]()
    cost = Field[float]()
    tool_calls = Field[int]()
    ticks = Field[int]()
    wall_s = Field[float]()

    def of(self, dimension: str) -> float:
        """What was spent in the budget dimension named ``dimension`` (0 for any other name)."""
        spent: float = self._json.get(dimension, 0)
        return spent


class AgentSpent(Record):
    """What one agent has used of its own budget."""

    __slots__ = ()
    tool_calls = Field[int]()
    model_calls = Field[int]()
    tokens = Field[int]()
    cost = Field[float]()

    def of(self, dimension: str) -> float:
        """What the agent spent in the dimension named ``dimension`` (0 for any other name)."""
        spent: float = self._json.get(dimension, 0)
        return spent


class AgentBudgetState(Record):
    """An agent's own budget (:class:`telic.kernel.AgentBudget`): its limits and its spending."""

    __slots__ = ()
    limits = Field[Mapping[str, float]]()
    """The limit of each dimension the agent has."""
    spent = Sub(AgentSpent)


class Valid(Record):
    """The last tick that ended valid, and its last sequence number."""

    __slots__ = ()
    tick = Field[int]()
    seq = Field[int]()


class ForkedFrom(Record):
    """The run this one was forked from, and where."""

    __slots__ = ()
    run = Field[str]()
    at = Field[int]()


class RosterEntry(Record):
    """An agent as declared at boot (:class:`telic.kinds.AgentRecord`)."""

    __slots__ = ()
    name = Field[str]()
    role = Field[str]()
    tools = Field[Sequence[str]]()
    restart = Field[str]()
    priority = Field[int]()


class RootSupervisor(Record):
    """The root supervisor of a run with teams."""

    __slots__ = ()
    strategy = Field[StrategyName]()
    intensity = Field[int]()
    period_s = Field[float]()
    escalations = Field[int]()


class TeamSupervisor(Record):
    """A team's supervisor."""

    __slots__ = ()
    supervisor = Field[str]()
    """Its own supervisor: ``root`` or another team."""
    strategy = Field[StrategyName]()
    intensity = Field[int]()
    period_s = Field[float]()
    restart = Field[Literal["permanent", "transient", "temporary"]]()
    agents = Field[Sequence[str]]()
    restarts = Field[int]()
    escalations = Field[int]()


class Supervision(Record):
    """A run's supervision tree, for a run booted with teams."""

    __slots__ = ()
    root = Sub(RootSupervisor)
    teams = Tables(TeamSupervisor)


class RunState(Record):
    """The folded state of a run (see the module docstring; :mod:`telic.reducer` folds it)."""

    __slots__ = ()
    goal = Field[str]()
    status = Field[str]()
    """``new``, ``running``, ``paused``, ``completed``, ``failed`` or ``stopped``."""
    reason = Field[str | None]()
    """Why it paused or ended."""
    seq = Field[int]()
    """The last transition folded."""
    tick = Field[int]()
    tick_open = Field[bool]()
    """A tick started and not yet completed."""
    progress = Field[float]()
    progress_tick = Field[int]()
    """The last tick that made progress."""
    booted_ts = Field[int | None]()
    forked_from = MaybeSub(ForkedFrom)
    budget = Field[Mapping[str, float]]()
    """The limit of each budget dimension the run has."""
    currency = Field[str]()
    warned = Field[Sequence[str]]()
    """Budget dimensions past their warning threshold."""
    exhausted = Field[Sequence[str]]()
    spent = Sub(Spent)
    roster = Rows(RosterEntry)
    agents = Tables(AgentState)
    memory = Field[Mapping[str, Mapping[str, Any]]]()
    """Each agent's memory, by key."""
    beliefs = Tables(Belief)
    plan = Tables(PlanItem)
    pending_tools = Tables(PendingTool)
    """By call id."""
    pending_approvals = Tables(PendingApproval)
    """By proposal sequence number (a string, as JSON keys are)."""
    explorations = Tables(Exploration)
    """By explorer name."""
    artifacts = Tables(Artifact)
    """By artifact name."""
    valid = Sub(Valid)
    restores = Rows(Restore)
    counts = Field[Mapping[str, int]]()
    """How many transitions of each kind."""
    supervision = MaybeSub(Supervision)
    """Only a run booted with teams has it."""
    agent_budgets = Tables(AgentBudgetState, optional=True)
    """By agent name, for the agents that have a budget of their own (empty when none has)."""

    def agents_in_order(self) -> list[tuple[str, AgentState]]:
        """The agents in the run's start order (its roster), then the others (explorers) by
        name. Use it wherever order matters: :attr:`agents` is in spawn order when the state
        was folded, in name order when it was decoded from a snapshot (whose keys are sorted),
        and a resumed run must act the same either way."""
        roster = {a.name: i for i, a in enumerate(self.roster)}
        last = len(roster)
        return sorted(self.agents.items(), key=lambda kv: (roster.get(kv[0], last), kv[0]))

    def budget_left(self) -> dict[str, float]:
        """What is left of each budget dimension the run has."""
        spent = self.spent
        return {k: limit - spent.of(k) for k, limit in self.budget.items()}
