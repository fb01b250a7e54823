"""The pure reducer: the state of a run is a fold of its transitions.

``state_at(seq) = reduce(apply, transitions[..seq])``. :func:`apply` reads no clock, no
randomness and no I/O; everything it needs is in the state and the transition. The state is
plain JSON (a dict), so it can be hashed canonically, snapshotted and shipped as it is; code
outside the reducer reads it typed, through :class:`telic.state.RunState` over that dict.

:class:`Fold` is the accumulator the ledger and the kernel keep; it mutates its own private
state in place for speed, and hands out independent copies. :func:`apply` and :func:`fold` are
the pure faces of it.

The state hash (:func:`state_hash`) is the SHA-256 of the state's canonical encoding with every
entry of ``memory``, ``beliefs`` and ``plan`` (the parts that grow with a run) replaced by the
hex SHA-256 of that entry's own canonical encoding. It is a function of the state alone, and a
:class:`Fold` keeps the entry digests up to date as it applies transitions, so hashing the
state each tick costs in proportion to the number of entries, not to their bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any, Final

import orjson

from telic.canonical import encode, encode_validated, hex_digest
from telic.state import RunState
from telic.transition import Transition

__all__ = [
    "OBSERVATION_WINDOW",
    "RECENT_WINDOW",
    "Fold",
    "apply",
    "fold",
    "initial_state",
    "state_hash",
]

State = dict[str, Any]

OBSERVATION_WINDOW: Final = 16
"""How many recent observations each agent's state keeps (the full history is the ledger)."""
RECENT_WINDOW: Final = 8
"""How many recent proposal fingerprints each agent keeps for the loop guard."""


def initial_state() -> State:
    """The state before any transition. A run booted with teams also has ``supervision``
    (the root's settings and each team's, with its restarts and escalations)."""
    return {
        "goal": "",
        "status": "new",
        "reason": None,
        "seq": 0,
        "tick": 0,
        "tick_open": False,
        "progress": 0.0,
        "booted_ts": None,
        "forked_from": None,
        "budget": {},
        "currency": "USD",
        "warned": [],
        "exhausted": [],
        "spent": {"tokens": 0, "cost": 0.0, "tool_calls": 0, "ticks": 0, "wall_s": 0.0},
        "roster": [],
        "agents": {},
        "memory": {},
        "beliefs": {},
        "plan": {},
        "pending_tools": {},
        "pending_approvals": {},
        "explorations": {},
        "artifacts": {},
        "valid": {"tick": 0, "seq": 0},
        "restores": [],
        "progress_tick": 0,
        "counts": {},
    }


def state_hash(state: State) -> str:
    """The state's hash (see the module docstring)."""
    return _hash_with(state, _digests(state))


Digests = dict[str, Any]
"""``{"memory": {agent: {key: hex}}, "beliefs": {key: hex}, "plan": {key: hex}}``."""


def _entry_digest(value: Any) -> str:
    # State is built from validated payloads with finite arithmetic: no NaN walk needed.
    return hex_digest(encode_validated(value))


def _digests(state: State) -> Digests:
    return {
        "memory": {
            agent: {k: _entry_digest(v) for k, v in entries.items()}
            for agent, entries in state["memory"].items()
        },
        "beliefs": {k: _entry_digest(v) for k, v in state["beliefs"].items()},
        "plan": {k: _entry_digest(v) for k, v in state["plan"].items()},
    }


def _hash_with(state: State, digests: Digests) -> str:
    return hex_digest(encode_validated({**state, **digests}))


def _copy(state: State) -> State:
    result: State = orjson.loads(orjson.dumps(state))
    return result


def _agent(state: State, name: str) -> dict[str, Any]:
    agents: dict[str, Any] = state["agents"]
    agent: dict[str, Any] | None = agents.get(name)
    if agent is None:
        agent = agents[name] = dict[str, Any](
            {
                "role": "unknown",
                "status": "running",
                "restarts": 0,
                "supervisor": "root",
                "temporary": False,
                "parent": None,
                "question": None,
                "tools": [],
                "observations": [],
                "recent": [],
                "rejections": 0,
                "hallucinations": 0,
            }
        )
    return agent


def _observe(state: State, agent: str, seq: int, source: str, content: Any) -> None:
    obs: list[Any] = _agent(state, agent)["observations"]
    obs.append({"seq": seq, "source": source, "content": content})
    if len(obs) > OBSERVATION_WINDOW:
        del obs[0]


def fingerprint(action: str, args: Any) -> str:
    """A short, stable fingerprint of a proposal's action and arguments (loop guard)."""
    return hex_digest(encode([action, args]))[:16]


# -- one handler per kind that changes state ----------------------------------------------


def _run_booted(s: State, t: Transition) -> None:
    p = t.data
    s["goal"] = p["goal"]
    s["status"] = "running"
    s["budget"] = dict(p["budget"])
    s["currency"] = p.get("currency", "USD")
    s["roster"] = list(p["agents"])
    s["booted_ts"] = t.ts
    own = {a["name"]: a["budget"] for a in p["agents"] if a.get("budget")}
    if own:  # only a run whose agents have budgets has the key: others' state is unchanged
        s["agent_budgets"] = {
            name: {
                "limits": dict(limits),
                "spent": {"tool_calls": 0, "model_calls": 0, "tokens": 0, "cost": 0.0},
            }
            for name, limits in own.items()
        }
    tree = p.get("supervision")
    if tree is not None:  # only a run with teams has the key: a flat run's state is unchanged
        s["supervision"] = {
            "root": {
                "strategy": tree["strategy"],
                "intensity": tree["intensity"],
                "period_s": tree["period_s"],
                "escalations": 0,
            },
            "teams": {
                team["name"]: {
                    "supervisor": team["supervisor"],
                    "strategy": team["strategy"],
                    "intensity": team["intensity"],
                    "period_s": team["period_s"],
                    "restart": team["restart"],
                    "agents": list(team["agents"]),
                    "restarts": 0,
                    "escalations": 0,
                }
                for team in tree["teams"]
            },
        }


def _supervisor_escalated(s: State, t: Transition) -> None:
    tree = s.get("supervision")
    if tree is None:
        return
    name = t.data["supervisor"]
    node = tree["root"] if name == "root" else tree["teams"].get(name)
    if node is not None:
        node["escalations"] += 1


def _supervisor_restarted(s: State, t: Transition) -> None:
    team = s.get("supervision", {}).get("teams", {}).get(t.data["supervisor"])
    if team is not None:
        team["restarts"] += 1


def _status(value: str) -> Callable[[State, Transition], None]:
    def handler(s: State, t: Transition) -> None:
        s["status"] = value
        s["reason"] = t.data.get("reason")

    return handler


def _run_forked(s: State, t: Transition) -> None:
    s["forked_from"] = {"run": t.data["parent"], "at": t.data["at"]}
    if s["status"] in ("completed", "failed", "stopped"):
        s["status"] = "running"
        s["reason"] = None


def _tick_started(s: State, t: Transition) -> None:
    s["tick"] = t.data["tick"]
    s["tick_open"] = True
    s["spent"]["ticks"] += 1


def _tick_completed(s: State, t: Transition) -> None:
    p = t.data
    s["tick_open"] = False
    if p["progress"] > s["progress"]:
        s["progress_tick"] = p["tick"]
    s["progress"] = p["progress"]
    if p["valid"]:
        s["valid"] = {"tick": p["tick"], "seq": t.seq}


def _agent_spawned(s: State, t: Transition) -> None:
    p = t.data
    a = _agent(s, p["agent"])
    a.update(
        role=p["role"],
        status="running",
        supervisor=p.get("supervisor", "root"),
        temporary=p.get("temporary", False),
        parent=p.get("parent"),
        question=p.get("question"),
        tools=list(p.get("tools", ())),
    )


def _agent_restarted(s: State, t: Transition) -> None:
    a = _agent(s, t.data["agent"])
    a["status"] = "running"
    a["restarts"] += 1


def _agent_failed(s: State, t: Transition) -> None:
    a = _agent(s, t.data["agent"])
    a["status"] = "failed"
    _observe(
        s,
        t.data["agent"],
        t.seq,
        "failure",
        {"error": t.data["error"], "message": t.data["message"]},
    )


def _agent_terminated(s: State, t: Transition) -> None:
    a = _agent(s, t.data["agent"])
    a["status"] = "killed" if t.data["reason"] in ("killed", "hallucination") else "terminated"


def _proposal_made(s: State, t: Transition) -> None:
    p = t.data
    recent: list[str] = _agent(s, p["agent"])["recent"]
    recent.append(fingerprint(p["action"], p.get("args", {})))
    if len(recent) > RECENT_WINDOW:
        del recent[0]


def _proposal_rejected(s: State, t: Transition) -> None:
    p = t.data
    a = _agent(s, p["agent"])
    a["rejections"] += 1
    _observe(s, p["agent"], t.seq, "policy", {"rejected": p["check"], "reason": p["reason"]})


def _budget_warning(s: State, t: Transition) -> None:
    if t.data["dimension"] not in s["warned"]:
        s["warned"].append(t.data["dimension"])


def _budget_exhausted(s: State, t: Transition) -> None:
    if t.data["dimension"] not in s["exhausted"]:
        s["exhausted"].append(t.data["dimension"])


def _approval_requested(s: State, t: Transition) -> None:
    s["pending_approvals"][str(t.data["proposal"])] = {
        "agent": t.data["agent"],
        "tool": t.data["tool"],
        "seq": t.seq,
    }


def _approval_settled(s: State, t: Transition) -> None:
    s["pending_approvals"].pop(str(t.data["proposal"]), None)
    if s["status"] == "paused" and not s["pending_approvals"]:
        s["status"] = "running"


def _hallucination(s: State, t: Transition) -> None:
    _agent(s, t.data["agent"])["hallucinations"] += 1


def _exploration(s: State, t: Transition) -> None:
    p = t.data
    s["explorations"][p["explorer"]] = {
        "question": p["question"],
        "agent": p["agent"],
        "proposal": p["proposal"],
        "seq": t.seq,
    }


def _tool_started(s: State, t: Transition) -> None:
    p = t.data
    s["pending_tools"][p["call_id"]] = {
        "agent": p["agent"],
        "tool": p["tool"],
        "args": p["args"],
        "idempotent": p.get("idempotent", False),
        "attempt": p.get("attempt", 1),
        "seq": t.seq,
    }
    s["spent"]["tool_calls"] += 1
    own = s.get("agent_budgets")
    if own is not None and p["agent"] in own:
        own[p["agent"]]["spent"]["tool_calls"] += 1


def _tool_completed(s: State, t: Transition) -> None:
    p = t.data
    s["pending_tools"].pop(p["call_id"], None)
    _observe(s, p["agent"], t.seq, f"tool:{p['tool']}", p["result"])


def _tool_ended_badly(s: State, t: Transition) -> None:
    p = t.data
    started = s["pending_tools"].pop(p["call_id"], None)
    detail = {
        "error": p.get("error", t.kind),
        "message": p.get("message", ""),
        "args": started["args"] if started else None,
    }
    _observe(s, p["agent"], t.seq, f"tool:{p['tool']}", detail)


def _observation(s: State, t: Transition) -> None:
    _observe(s, t.data["agent"], t.seq, t.data["source"], t.data["content"])


def _memory(s: State, t: Transition) -> None:
    p = t.data
    s["memory"].setdefault(p["agent"], {})[p["key"]] = p["value"]


def _belief(s: State, t: Transition) -> None:
    p = t.data
    s["beliefs"][p["key"]] = {
        "value": p["value"],
        "agent": p["agent"],
        "evidence": list(p.get("evidence", ())),
        "seq": t.seq,
    }


def _plan(s: State, t: Transition) -> None:
    p = t.data
    s["plan"][p["key"]] = {"value": p["value"], "agent": p["agent"], "seq": t.seq}


def _message(s: State, t: Transition) -> None:
    p = t.data
    _observe(s, p["to"], t.seq, f"message:{p['sender']}", p["content"])


def _restored(s: State, t: Transition) -> None:
    p = t.data
    s["memory"] = _copy(p["memory"])
    s["beliefs"] = _copy(p["beliefs"])
    s["plan"] = _copy(p["plan"])
    s["progress"] = p["progress"]
    s["restores"].append({"target": p["target"], "tick": p["tick"], "seq": t.seq})


def _artifact(s: State, t: Transition) -> None:
    s["artifacts"][t.data["name"]] = {"media_type": t.data["media_type"], "seq": t.seq}


def _model_called(s: State, t: Transition) -> None:
    p = t.data
    spent = s["spent"]
    tokens = p.get("input_tokens", 0) + p.get("output_tokens", 0)
    cost = p.get("cost", 0.0)
    spent["tokens"] += tokens
    spent["cost"] += cost
    own = s.get("agent_budgets")
    if own is not None and t.agent in own:
        mine = own[t.agent]["spent"]
        mine["model_calls"] += 1
        mine["tokens"] += tokens
        mine["cost"] += cost


def _proposal_unseen(s: State, t: Transition) -> None:
    """:func:`_proposal_made` for a proposal whose fingerprint leaves the window before anyone
    can read it (:meth:`Fold.apply_all`): a placeholder takes its place in the window."""
    recent: list[str] = _agent(s, t.data["agent"])["recent"]
    recent.append("")
    if len(recent) > RECENT_WINDOW:
        del recent[0]


def _unseen(ts: list[Transition]) -> set[int]:
    """The positions in ``ts`` of the ``proposal.made`` followed in ``ts`` by at least
    :data:`RECENT_WINDOW` more of the same agent's: their fingerprints are pushed out of the
    window before the end of ``ts``."""
    later: dict[Any, int] = {}
    out: set[int] = set()
    for i in range(len(ts) - 1, -1, -1):
        t = ts[i]
        if t.kind == "proposal.made":
            agent = t.data["agent"]
            n = later.get(agent, 0)
            if n >= RECENT_WINDOW:
                out.add(i)
            later[agent] = n + 1
    return out


_CHUNK: Final = 4096
"""Transitions :meth:`Fold.apply_all` holds at once."""


HANDLERS: Final[dict[str, Callable[[State, Transition], None]]] = {
    "run.booted": _run_booted,
    "run.resumed": _status("running"),
    "run.forked": _run_forked,
    "run.paused": _status("paused"),
    "run.completed": _status("completed"),
    "run.failed": _status("failed"),
    "run.stopped": _status("stopped"),
    "tick.started": _tick_started,
    "tick.completed": _tick_completed,
    "agent.spawned": _agent_spawned,
    "agent.restarted": _agent_restarted,
    "agent.failed": _agent_failed,
    "agent.terminated": _agent_terminated,
    "supervisor.escalated": _supervisor_escalated,
    "supervisor.restarted": _supervisor_restarted,
    "proposal.made": _proposal_made,
    "proposal.rejected": _proposal_rejected,
    "budget.warning": _budget_warning,
    "budget.exhausted": _budget_exhausted,
    "approval.requested": _approval_requested,
    "approval.granted": _approval_settled,
    "approval.denied": _approval_settled,
    "hallucination.detected": _hallucination,
    "exploration.spawned": _exploration,
    "tool.started": _tool_started,
    "tool.completed": _tool_completed,
    "tool.failed": _tool_ended_badly,
    "tool.timeout": _tool_ended_badly,
    "tool.unknown": _tool_ended_badly,
    "observation.recorded": _observation,
    "memory.updated": _memory,
    "belief.updated": _belief,
    "plan.updated": _plan,
    "message.sent": _message,
    "state.restored": _restored,
    "artifact.recorded": _artifact,
    "model.called": _model_called,
}
"""The kinds that change state. Every other kind only advances ``seq`` and ``counts``."""

_DIGESTED: Final = frozenset({"memory.updated", "belief.updated", "plan.updated", "state.restored"})
"""The kinds that change the entries :func:`state_hash` digests one by one."""


class Fold:
    """A running fold. Owns its state; :meth:`state` hands out a copy.

    Once hashed, it keeps the digests of the state's growing parts (see the module
    docstring): applying a transition marks the one entry it changed, and the next
    :meth:`hash` digests the marked entries again (each once, however often it changed since)
    and encodes the rest.
    """

    __slots__ = ("_d", "_live", "_s", "_stale")

    def __init__(self, state: State | None = None) -> None:
        self._s: State = initial_state() if state is None else _copy(state)
        self._d: Digests | None = None
        self._stale: set[tuple[str, str | None, str]] = set()
        """Entries changed since their digest in ``_d`` was taken: (section, agent, key)."""
        self._live: RunState | None = None

    @classmethod
    def adopt(cls, state: State) -> Fold:
        """A fold that takes ``state`` over without copying it: the caller must hold no other
        reference to it (e.g. a state just decoded from a snapshot)."""
        fold = cls.__new__(cls)
        fold._s = state
        fold._d = None
        fold._stale = set()
        fold._live = None
        return fold

    @property
    def seq(self) -> int:
        seq: int = self._s["seq"]
        return seq

    def apply(
        self, t: Transition, handler: Callable[[State, Transition], None] | None = None
    ) -> None:
        """Fold ``t`` in. ``handler``: one to use instead of its kind's (what
        :meth:`apply_all` does for a fingerprint nobody can read)."""
        s = self._s
        kind = t.kind
        if handler is None:
            handler = HANDLERS.get(kind)
        if handler is not None:
            handler(s, t)
            d = self._d
            if d is not None and kind in _DIGESTED:
                self._track(d, t)
        counts = s["counts"]
        counts[kind] = counts.get(kind, 0) + 1
        s["seq"] = t.seq
        booted = s["booted_ts"]
        if booted is not None:
            s["spent"]["wall_s"] = (t.ts - booted) / 1e6

    def _track(self, d: Digests, t: Transition) -> None:
        """Mark the one entry ``t`` changed: its digest is taken again by the next
        :meth:`hash` (``d``: the digests kept)."""
        p = t.data
        match t.kind:
            case "memory.updated":
                self._stale.add(("memory", p["agent"], p["key"]))
            case "belief.updated":
                self._stale.add(("beliefs", None, p["key"]))
            case "plan.updated":
                self._stale.add(("plan", None, p["key"]))
            case _:  # state.restored replaces the three parts whole
                self._d = None
                self._stale.clear()

    def apply_all(self, transitions: Iterable[Transition]) -> None:
        """Apply ``transitions`` in order: the same state as :meth:`apply` on each, in less
        time. They are taken in chunks, and in each chunk a ``proposal.made`` that is
        followed by :data:`RECENT_WINDOW` more of the same agent's in the chunk has no
        fingerprint computed: its fingerprint leaves the agent's ``recent`` window before the
        chunk ends, so nothing could read it (a fingerprint is the SHA-256 of the proposal's
        canonical JSON: in a fold from a snapshot it was the largest cost per transition)."""
        it = iter(transitions)
        while chunk := list(islice(it, _CHUNK)):
            self._apply_chunk(chunk)

    def _apply_chunk(self, ts: list[Transition]) -> None:
        unseen = _unseen(ts)
        apply = self.apply
        for i, t in enumerate(ts):
            if unseen and i in unseen:
                apply(t, _proposal_unseen)
            else:
                apply(t)

    def state(self) -> State:
        """An independent copy of the folded state."""
        return _copy(self._s)

    def copy(self) -> Fold:
        """An independent fold at the same state, with the entry digests this one keeps (so
        the copy's next :meth:`hash` costs what this one's would)."""
        fold = Fold.adopt(_copy(self._s))
        d = self._d
        if d is not None:
            fold._d = {
                "memory": {agent: dict(entries) for agent, entries in d["memory"].items()},
                "beliefs": dict(d["beliefs"]),
                "plan": dict(d["plan"]),
            }
            fold._stale = set(self._stale)
        return fold

    def encoded(self) -> bytes:
        """The folded state as JSON, its mappings in the order they were filled (what
        snapshots store, so that a state read back from one keeps the order of the live
        state: a plan's steps, the agents). Not the canonical form: what is hashed is
        :meth:`hash`. A fold of validated payloads holds no non-finite number, so the walk
        :func:`telic.canonical.encode` makes to rule them out is not needed."""
        return orjson.dumps(self._s)

    def hash(self) -> str:
        """:func:`state_hash` of the folded state."""
        d = self._d
        s = self._s
        if d is None:
            d = self._d = _digests(s)
            self._stale.clear()
        elif self._stale:
            for section, agent, key in self._stale:
                if section == "memory":
                    d["memory"].setdefault(agent, {})[key] = _entry_digest(s["memory"][agent][key])
                else:
                    d[section][key] = _entry_digest(s[section][key])
            self._stale.clear()
        return _hash_with(s, d)

    def peek(self) -> State:
        """The live state, not a copy: read it, never change it."""
        return self._s

    @property
    def live(self) -> RunState:
        """The live state, typed (:mod:`telic.state`), not a copy: the kernel's own reading."""
        live = self._live
        if live is None:
            live = self._live = RunState(self._s)
        return live


def apply(state: State, transition: Transition) -> State:
    """Pure: the state after ``transition``. ``state`` is not changed."""
    f = Fold(state)
    f.apply(transition)
    return f.peek()


def fold(transitions: Iterable[Transition], state: State | None = None) -> State:
    """Pure: fold ``transitions`` onto ``state`` (or the initial state)."""
    f = Fold(state)
    f.apply_all(transitions)
    return f.peek()
