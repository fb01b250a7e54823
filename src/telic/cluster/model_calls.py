"""Model calls as Ray tasks, placed by the resources their agent declares.

An agent with :attr:`~telic.kernel.AgentSpec.resources` (``{"model_gateway": 1}``,
``{"num_gpus": 1}`` for a model served on a GPU node) hosted on a Ray cluster has its model
mind's :attr:`~telic.minds.ModelMind.remote` set to a :class:`RayModelCalls`: each try of
each request is one Ray task with those resources, which sends the HTTP request and returns
the response. Only the request leaves the host. The scheduler slot, the rate limits, the
retries and their back-off (``Retry-After`` included), the token budget and the
write-ahead ``model.called`` / ``model.failed`` records stay in the run's host: they belong
to the run and its lease, and a retry after a lost node is a new task the scheduler sends
when it decides to (not one Ray repeats on its own: ``max_retries=0``).

How a task's end maps onto a local try's: a response is a response (with the node that sent
it, recorded on the ``model.called``); a :class:`~telic.minds.Retryable` or
:class:`~telic.errors.ProviderError` raised in the task is that error (with its node); a task
Ray could not finish (its node or worker died, it could not be placed or sent) is a
:class:`~telic.minds.Retryable`, so the scheduler records a ``model.failed`` and tries again
on a node that is alive; a task that raised anything else re-raises it here, as a local send
would. A timeout or a stopped run cancels the task (``ray.cancel(force=True)``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Final

from telic.cluster._ray import exceptions, ray
from telic.cluster.tasks import outcome, ray_options
from telic.errors import ConfigError, ProviderError
from telic.minds.base import Mind
from telic.minds.endpoint import Endpoint, Sent
from telic.minds.model import ModelMind
from telic.minds.scheduler import Retryable

__all__ = ["RayModelCalls", "models_on_ray"]

_MAX_REASON: Final = 300
"""Characters of a Ray error kept in a ``model.failed`` record (Ray's are many lines)."""


def _send(endpoint: Endpoint, request: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The Ray task: send ``request`` once; returns the response and this node's id."""
    node = str(ray.get_runtime_context().get_node_id())
    try:
        return asyncio.run(endpoint.send_once(request)), node
    except Retryable as exc:
        exc.node = node
        raise


_remote_send: Any = ray.remote(max_retries=0)(_send)
"""Never retried by Ray: the run's scheduler retries, each try on record."""


class RayModelCalls:
    """A :class:`~telic.minds.endpoint.RemoteSend` that sends each try as a Ray task placed
    by ``resources``."""

    def __init__(self, resources: Mapping[str, float]) -> None:
        self.resources = dict(resources)
        self._options = ray_options(resources)

    async def __call__(self, endpoint: Endpoint, request: dict[str, Any]) -> Sent:
        try:
            ref = _remote_send.options(name="telic-model-call", **self._options).remote(
                endpoint, request
            )
        except exceptions.RayError as exc:
            reason = f"the model request could not be sent as a Ray task: {_line(exc)}"
            raise Retryable(reason) from None
        except Exception as exc:  # the request or endpoint would not serialize
            raise ProviderError(
                f"{endpoint.name}: the model request cannot be sent as a Ray task: {_line(exc)}"
            ) from None
        try:
            response, node = await outcome(ref)
        except exceptions.RayTaskError as exc:  # it failed with no exception of its own
            raise ProviderError(
                f"{endpoint.name}: the model request's Ray task failed: {_line(exc)}"
            ) from None
        except exceptions.RayError as exc:  # its node or worker died, or Ray gave up on it
            raise Retryable(
                f"the model request's Ray task was lost ({type(exc).__name__}): {_line(exc)}"
            ) from None
        return Sent(response, node)


def _line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def models_on_ray(mind: Mind, agent: str, resources: Mapping[str, float]) -> None:
    """Have ``mind`` (of ``agent``) send its model requests as Ray tasks placed by
    ``resources``: set on the mind itself, which the host built for this run alone. Without
    resources nothing changes; a mind that is not a model mind cannot take them."""
    if not resources:
        return
    if not isinstance(mind, ModelMind):
        raise ConfigError(
            f"agent {agent!r} declares resources for its model calls, but its mind "
            f"({type(mind).__name__}) is not a model mind: remove them, or give the work "
            "that needs them to a tool with resources"
        )
    mind.remote = RayModelCalls(resources)
