"""Minds: what proposes. Scripted and function minds for tests and demos; model adapters
(OpenAI-compatible, Anthropic) behind the same :class:`Mind` protocol."""

from __future__ import annotations

from telic.minds.base import FunctionMind, Mind, ScriptedMind, Step, ToolInfo, View

__all__ = ["FunctionMind", "Mind", "ScriptedMind", "Step", "ToolInfo", "View"]
