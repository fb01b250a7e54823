"""Minds: what proposes. Scripted and function minds for tests and demos; model adapters
(OpenAI-compatible, Anthropic) behind the same :class:`Mind` protocol.

Layout: :mod:`~telic.minds.base` (the protocol, the view, the deterministic minds),
:mod:`~telic.minds.providers` (how to get an authenticated client for a model string),
:mod:`~telic.minds.model` (the propose loop every adapter shares: prompt, replay, repairs,
accounting), :mod:`~telic.minds.openai` and :mod:`~telic.minds.anthropic` (the adapters),
:mod:`~telic.minds.scheduler` (per-provider limits, priorities, fairness, retries),
:mod:`~telic.minds.pricing` (the price table), :mod:`~telic.minds.testing` (a local server
speaking both wire formats, for tests and offline runs).
"""

from __future__ import annotations

from telic.minds.base import FunctionMind, Mind, ScriptedMind, Step, SyncMind, ToolInfo, View
from telic.minds.factory import model_mind, shared_scheduler
from telic.minds.model import ModelMind
from telic.minds.pricing import Price, PriceTable, default_prices
from telic.minds.providers import PRESETS, Provider, parse_model, resolve_provider
from telic.minds.scheduler import Dispatch, Limits, Retryable, Scheduler

ALLOW_MODEL_REQUESTS: bool = True
"""The global switch: when False, model minds refuse to call any endpoint that is not on
this machine (loopback) and raise :class:`~telic.errors.ModelRequestsForbidden`. The test
suite turns it off for the whole session (``tests/conftest.py``)."""

__all__ = [
    "ALLOW_MODEL_REQUESTS",
    "PRESETS",
    "Dispatch",
    "FunctionMind",
    "Limits",
    "Mind",
    "ModelMind",
    "Price",
    "PriceTable",
    "Provider",
    "Retryable",
    "Scheduler",
    "ScriptedMind",
    "Step",
    "SyncMind",
    "ToolInfo",
    "View",
    "default_prices",
    "model_mind",
    "parse_model",
    "resolve_provider",
    "shared_scheduler",
]
