"""The client side: :class:`RayHost` connects to a Ray cluster and starts runs on it.

::

    cluster = RayHost("127.0.0.1:6379", db="postgresql://telic@pg/telic")
    run_id = cluster.start("swarm.toml")
    status = cluster.wait(run_id)
    cluster.close()

The ledger must be PostgreSQL (every node writes to it; :class:`ClusterNeedsPostgres`
otherwise). :meth:`RayHost.ensure_hosts` puts a host actor on every live node that has none
(:mod:`telic.cluster.actor`); :meth:`RayHost.start` checks the spec here, then boots the run
on the least loaded host, which drives it from then on. Nothing about a run lives in this
process: it may exit, and the run goes on (and moves, if its node dies).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from telic.cluster._ray import exceptions, ray, strategies
from telic.cluster.actor import HostActor, actor_name
from telic.cluster.host import StartRequest
from telic.errors import (
    ClusterError,
    ClusterNeedsPostgres,
    ClusterUnavailable,
    NoClusterHosts,
    RunNotFound,
)
from telic.ledger import BaseLedger, open_ledger
from telic.spec import build_run

__all__ = ["NAMESPACE", "HostInfo", "RayHost", "ledger_url", "require_postgres"]

NAMESPACE: Final = "telic"
"""The Ray namespace of telic's named actors."""
_ENDED: Final = frozenset({"completed", "failed", "stopped"})
_CALL_TIMEOUT_S: Final = 30.0


def require_postgres(db: str) -> str:
    """``db`` if it is a PostgreSQL URL, else :class:`ClusterNeedsPostgres`."""
    scheme = db.partition("://")[0].lower() if "://" in db else ""
    if scheme not in ("postgresql", "postgres"):
        raise ClusterNeedsPostgres(db)
    return db


def ledger_url(ledger: BaseLedger) -> str:
    """The URL other processes open ``ledger`` with (a PostgreSQL ledger's DSN and schema)."""
    dsn: str | None = getattr(ledger, "dsn", None)
    if dsn is None:
        raise ClusterNeedsPostgres(ledger.url)
    schema: str | None = getattr(ledger, "schema", None)
    if schema:
        dsn += ("&" if "?" in dsn else "?") + f"schema={schema}"
    return dsn


@dataclass(frozen=True, slots=True)
class HostInfo:
    """A host actor and what it drives."""

    node: str
    host: str
    runs: tuple[str, ...]


def _reachable(address: str) -> None:
    """Fail fast (and in one line) when nothing listens at ``host:port``."""
    if address in ("auto", "local") or address.startswith("ray://"):
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ClusterUnavailable(address, "an address is host:port (or auto)")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=3):
            pass
    except OSError as exc:
        raise ClusterUnavailable(address, exc.strerror or str(exc)) from None


def connect(address: str) -> None:
    """Connect this process to the Ray cluster at ``address`` (once; again is a no-op)."""
    if ray.is_initialized():
        return
    _reachable(address)
    try:
        ray.init(
            address=address,
            namespace=NAMESPACE,
            log_to_driver=False,
            configure_logging=False,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterUnavailable(address, " ".join(str(exc).split())[:300]) from None


def alive_nodes() -> list[dict[str, Any]]:
    """Ray's live nodes (``ray.nodes()`` entries)."""
    return [n for n in ray.nodes() if n.get("Alive")]


class RayHost:
    """Runs hosted on the Ray cluster at ``address`` over the PostgreSQL ledger ``db``.

    ``options`` go to every :class:`~telic.cluster.host.NodeHost` this creates (the lease
    time, for one); hosts that exist already keep theirs.
    """

    def __init__(self, address: str, db: str, **options: Any) -> None:
        self.address = address
        self.db = require_postgres(db)
        self.options = dict(options)
        self.ledger = open_ledger(self.db)
        try:
            connect(address)
        except BaseException:
            self.ledger.close()
            raise

    # -- hosts --------------------------------------------------------------------------

    def ensure_hosts(self) -> list[Any]:
        """A host actor on every live node (creating the missing ones); returns them."""
        actors: list[Any] = []
        for node in alive_nodes():
            node_id = str(node["NodeID"])
            actor = HostActor.options(
                name=actor_name(node_id),
                namespace=NAMESPACE,
                lifetime="detached",
                get_if_exists=True,
                scheduling_strategy=strategies.NodeAffinitySchedulingStrategy(node_id, soft=False),
            ).remote(self.db, node_id, self.options)
            actors.append(actor)
        if not actors:
            raise NoClusterHosts(self.address)
        return actors

    def hosts(self) -> list[HostInfo]:
        """Every live node's host and the runs it drives (a host that does not answer within
        its timeout is left out)."""
        infos: list[HostInfo] = []
        actors = self.ensure_hosts()
        refs = [a.describe.remote() for a in actors]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=_CALL_TIMEOUT_S)
        for ref in ready:
            try:
                d: dict[str, Any] = ray.get(ref)
            except exceptions.RayError:
                continue
            infos.append(HostInfo(node=d["node"], host=d["host"], runs=tuple(d["runs"])))
        return infos

    def _host_of(self, node_id: str) -> Any:
        """The host actor of ``node_id`` (created if the node is alive and has none yet)."""
        try:
            return ray.get_actor(actor_name(node_id), namespace=NAMESPACE)
        except ValueError:
            pass
        self.ensure_hosts()
        try:
            return ray.get_actor(actor_name(node_id), namespace=NAMESPACE)
        except ValueError:
            raise ClusterError(
                f"no live node {node_id} in the Ray cluster at {self.address}: see "
                "`telic cluster status` for the nodes"
            ) from None

    # -- runs ---------------------------------------------------------------------------

    def start(
        self,
        spec: str | Path,
        *,
        model: str | None = None,
        base_dir: str | Path | None = None,
        overrides: Mapping[str, Any] | None = None,
        node: str | None = None,
        run_id: str | None = None,
    ) -> str:
        """Boot a run from the spec file ``spec`` on a host (the least loaded one, or the
        host of ``node``); returns its id. The spec is read and built here first, so a bad one
        fails here with its :class:`~telic.errors.SpecError`; its text travels to the host
        (the file need not be on the nodes), while the modules it names must be importable
        there (installed, or at the same path as here)."""
        path = str(Path(spec).resolve())
        base = None if base_dir is None else str(Path(base_dir).resolve())
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = None  # build_run says what is wrong with it, in one line
        checked = build_run(path, model=model, base_dir=base, overrides=overrides, text=text)
        checked.minds.clear()  # nothing connected yet: nothing to close
        checked.servers.clear()
        request = StartRequest(
            path=path,
            text=text,
            model=model,
            base_dir=base,
            overrides=dict(overrides or {}),
            run_id=run_id,
        )
        if node is not None:
            actor = self._host_of(node)
        else:
            loads = {h.node: len(h.runs) for h in self.hosts()}
            if not loads:
                raise NoClusterHosts(self.address)
            actor = self._host_of(min(loads, key=lambda n: (loads[n], n)))
        try:
            return ray.get(actor.start.remote(request), timeout=_CALL_TIMEOUT_S)
        except exceptions.RayTaskError as exc:
            raise ClusterError(
                f"the host could not start the run from {path}: {_cause(exc)}"
            ) from None
        except exceptions.RayError as exc:
            raise ClusterError(f"the host did not answer: {_cause(exc)}") from None

    def stop(self, run_id: str, *, reason: str) -> bool:
        """Stop ``run_id`` where it is driven; False if no host drives it."""
        for h in self.hosts():
            if run_id in h.runs:
                return bool(
                    ray.get(
                        self._host_of(h.node).stop.remote(run_id, reason), timeout=_CALL_TIMEOUT_S
                    )
                )
        return False

    def status(self, run_id: str) -> str:
        """The run's status, from the ledger."""
        return str(self.ledger.state_at(run_id)["status"])

    def wait(self, run_id: str, *, timeout: float | None = None, poll_s: float = 0.2) -> str:
        """Wait until ``run_id`` ends (or ``timeout`` passes); returns its status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                status = self.status(run_id)
            except RunNotFound:
                status = "new"
            if status in _ENDED or (deadline is not None and time.monotonic() >= deadline):
                return status
            time.sleep(poll_s)

    def close(self) -> None:
        """Close this process's ledger connection (the cluster and its runs go on)."""
        self.ledger.close()


def _cause(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    text = str(cause) if cause is not None else str(exc)
    return " ".join(text.split())[:400]
