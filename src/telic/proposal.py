"""Proposals: what a mind returns. A proposal changes nothing until the kernel commits it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from telic.kinds import Action, Claim, ModelCalled

__all__ = ["Action", "Claim", "Proposal"]


class Proposal(BaseModel):
    """An intent: an action with arguments, a confidence, a reason and the claims it rests on.

    Actions and their ``args``:

    - ``tool``: ``{"tool": name, "args": {...}}``;
    - ``remember``: ``{"key": k, "value": v}`` (the agent's memory);
    - ``plan``: ``{"key": k, "value": v}`` (a run-level choice; claims ``resource=plan:k``);
    - ``message``: ``{"to": agent, "content": ...}``;
    - ``spawn``: ``{"question": text, "role": role}`` (a temporary helper);
    - ``finish``: ``{"result": ...}`` (the agent is done).

    Claims become beliefs of the run once the proposal is accepted.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    action: Action
    args: dict[str, JsonValue] = Field(default_factory=dict)
    confidence: float = Field(default=1.0, ge=0.0, le=1.0)
    """How sure the mind is, in [0, 1]; below the exploration threshold an explorer is spawned."""
    reason: str = ""
    claims: tuple[Claim, ...] = ()
    resource: str | None = None
    """An exclusive resource; defaults to ``plan:<key>`` for plan proposals."""
    cost: float | None = None
    """The cost of what is proposed, if it has one (the budgeter's conflict policy uses it)."""
    model_calls: tuple[ModelCalled, ...] = Field(default=(), exclude=True)
    """Model calls made to produce this proposal; the kernel records them first."""

    def claimed_resource(self) -> str | None:
        if self.resource is not None:
            return self.resource
        if self.action == "plan":
            key: Any = self.args.get("key")
            return f"plan:{key}" if key is not None else None
        return None
