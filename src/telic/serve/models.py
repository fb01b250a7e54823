"""The API's records: what the server sends and accepts, as pydantic models.

Transition payloads are the ledger's own models (:data:`telic.kinds.CATALOGUE`): the OpenAPI
schema lists each of them (``GET /kinds`` gives them too), and a transition's ``payload`` is
the JSON of the model its ``kind`` names.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from telic.errors import SpecError
from telic.statediff import Change

__all__ = [
    "AgentOut",
    "ApprovalDecision",
    "ApprovalOut",
    "Change",
    "ErrorOut",
    "ForkIn",
    "KindOut",
    "ParentRef",
    "ResumeIn",
    "RunDetail",
    "RunPage",
    "RunSummary",
    "StartIn",
    "StateOut",
    "StopIn",
    "SupervisorOut",
    "TranscriptOut",
    "TransitionOut",
    "TransitionPage",
    "VerifyOut",
]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ErrorOut(_Out):
    """Every 4xx and 5xx body."""

    error: str
    """A stable code: ``not_found``, ``bad_request``, ``unauthenticated``, ``forbidden``,
    ``conflict``, ``too_large``, ``unavailable``."""
    detail: str
    """What was wrong and what to do, in one line."""


class ParentRef(_Out):
    run: str
    seq: int
    """The last parent sequence number the fork shares."""


class RunSummary(_Out):
    id: str
    goal: str
    status: str
    """new, running, paused (waiting for an approval), completed, failed or stopped."""
    parent: ParentRef | None
    head: int
    """The last sequence number."""
    head_hash: str
    hosted: bool
    """Driven by this server's kernel (it can stop it)."""


class RunPage(_Out):
    items: list[RunSummary]
    next_offset: int | None
    """Pass as ``offset`` for the next page; null on the last one."""
    total: int


class AgentOut(_Out):
    name: str
    role: str
    status: str
    restarts: int
    supervisor: str
    """The supervisor it runs under: ``root``, or its team (an explorer: its parent's)."""
    temporary: bool
    parent: str | None
    """For an explorer: the agent that spawned it."""


class SupervisorOut(_Out):
    """A supervisor of the run's tree: the root, or a team (see ``RunConfig.teams``)."""

    name: str
    parent: str | None
    """The supervisor it runs under; null for the root."""
    strategy: str | None
    """one_for_one, one_for_all or rest_for_one; null for the root of a run without teams
    (whose settings are not on record)."""
    intensity: int | None
    """More restarts than this within ``period_s`` and it gives up to its parent."""
    period_s: float | None
    restart: str | None
    """A team's restart type under its parent; null for the root."""
    restarts: int
    """How many times its parent restarted it after it gave up."""
    escalations: int | None
    """How many times it gave up; null when not on record (the root of a run without teams:
    its giving up failed the run)."""
    children: list[str]
    """Its agents (explorers included) and teams, in start order."""


class ApprovalOut(_Out):
    run: str
    proposal: int
    """The seq of the proposal that waits (the id to approve or deny)."""
    agent: str
    tool: str
    args: dict[str, JsonValue]
    requested_seq: int
    """The seq of its ``approval.requested``."""


class RunDetail(RunSummary):
    reason: str | None
    """Why it ended, once it has."""
    tick: int
    progress: float
    budget: dict[str, float]
    """Limits by dimension; an absent one is unlimited."""
    spent: dict[str, float]
    currency: str
    agents: list[AgentOut]
    supervisors: list[SupervisorOut]
    """The supervision tree: the root first, then each team under its parent."""
    approvals: list[ApprovalOut]
    """High-impact calls waiting for a decision."""
    artifacts: list[str]
    state_hash: str


class TransitionOut(_Out):
    """A committed transition (``telic trace --json``'s line format)."""

    run: str
    seq: int
    tick: int
    agent: str | None
    kind: str
    payload: dict[str, Any]
    """The payload: the JSON of the ledger model named by ``kind`` (see ``GET /kinds``)."""
    causes: list[int]
    ts: str
    """ISO 8601, UTC."""
    ts_us: int
    v: int
    prev_hash: str
    hash: str


class TransitionPage(_Out):
    items: list[TransitionOut]
    next_from: int | None
    """Pass as ``from`` for the next page; null once the head is reached."""
    head: int


class StateOut(_Out):
    run: str
    seq: int
    state_hash: str
    state: dict[str, Any]


class TranscriptOut(_Out):
    run: str
    lines: list[str]


class VerifyOut(_Out):
    run: str
    ok: bool
    checked: int
    first_bad: int | None
    reason: str | None
    head_hash: str


class KindOut(_Out):
    kind: str
    summary: str
    schema_: dict[str, Any] = Field(alias="schema")


class StartIn(_In):
    """Start a run from a spec: the TOML ``telic run`` takes (``toml``), or its JSON form
    (``spec``). Import paths in it resolve from ``directory`` (default: the server's working
    directory)."""

    toml: str | None = None
    spec: dict[str, JsonValue] | None = None
    model: str | None = None
    """Replaces the spec's default model, as ``telic run --model``."""
    directory: str | None = None

    def save(self, spec_dir: Path) -> Path:
        """Write the posted spec to a new file in ``spec_dir`` (a run is built from a file,
        in the server or on any node of a cluster that sees the directory); its path."""
        if (self.toml is None) == (self.spec is None):
            raise SpecError("<request>", "give exactly one of `toml` (text) or `spec` (JSON)")
        spec_dir.mkdir(parents=True, exist_ok=True)
        name = secrets.token_hex(6)
        if self.toml is not None:
            path = spec_dir / f"{name}.toml"
            path.write_text(self.toml, encoding="utf-8")
        else:
            path = spec_dir / f"{name}.json"
            path.write_text(json.dumps(self.spec), encoding="utf-8")
        return path.resolve()


class StopIn(_In):
    reason: str = Field(default="stopped through the API", max_length=1000)


class ForkIn(_In):
    at: int = Field(ge=0)
    """The last sequence number the fork shares with its parent."""


class ResumeIn(_In):
    """Resume a run (a fork, or one a crash interrupted) in the server's kernel. A fork may
    change its model, prompt or policy: a counterfactual, recorded in ``run.resumed``."""

    model: str | None = None
    instructions: str | None = None
    """Replaces the spec's ``instructions`` (appended to every model agent's prompt)."""
    policy: dict[str, JsonValue] | None = None
    """Fields of the spec's ``[policy]`` to replace."""
    reason: str = Field(default="resumed through the API", max_length=1000)


class ApprovalDecision(_In):
    decision: Literal["approve", "deny"]
    reason: str = Field(default="", max_length=4000)
