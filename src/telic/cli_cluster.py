"""The ``telic`` commands for runs hosted on a Ray cluster: ``telic cluster status``, and what
``telic run --ray`` and ``telic serve --ray`` need. Registered on :data:`telic.cli.app`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from telic.cli import (  # the CLI's own helpers: this module is part of it
    DEFAULT_DB,
    DbOption,
    JsonFlag,
    _fail,  # pyright: ignore[reportPrivateUsage]
    _print_json,  # pyright: ignore[reportPrivateUsage]
    app,
    out,
)
from telic.errors import TelicError
from telic.transcript import render

if TYPE_CHECKING:
    from telic.cluster import RayHost

__all__ = ["RayOption", "check_cluster_db", "cluster_of", "run_on_cluster"]

cluster_app = typer.Typer(help="Runs hosted on a Ray cluster (needs telic[ray]).")
app.add_typer(cluster_app, name="cluster")

RayOption = Annotated[
    str | None,
    typer.Option(
        "--ray",
        envvar="TELIC_RAY_ADDRESS",
        help="A Ray cluster's address (host:port, or auto): host runs there, over a PostgreSQL "
        "--db. Needs telic[ray].",
    ),
]

_ENDED = ("completed", "failed", "stopped")


def check_cluster_db(db: str) -> None:
    """One line and exit 1 unless ``db`` is a PostgreSQL URL (checked before Ray is touched)."""
    scheme = db.partition("://")[0].lower() if "://" in db else ""
    if scheme not in ("postgresql", "postgres"):
        _fail(
            f"runs hosted on a Ray cluster need a PostgreSQL ledger that every node reaches, not "
            f"{db}: pass --db postgresql://user@host/db"
        )


def cluster_of(address: str, db: str) -> RayHost:
    """A connected :class:`RayHost`, or one line and exit 1."""
    check_cluster_db(db)
    try:
        from telic.cluster import RayHost
    except TelicError as exc:
        _fail(str(exc))
    try:
        return RayHost(address, db)
    except TelicError as exc:
        _fail(str(exc))


def run_on_cluster(address: str, spec: Path, *, model: str | None, db: str) -> tuple[RayHost, str]:
    """Start the spec's run on the cluster and print its transcript from the ledger until it
    ends; returns the cluster client and the run id."""
    cluster = cluster_of(address, db)
    try:
        run_id = cluster.start(spec, model=model)
        out.print(f"run {run_id} started on the Ray cluster at {address}", style="dim")
        printed = 0
        while True:
            status = cluster.status(run_id)
            info = cluster.ledger.run(run_id)
            lines = render(cluster.ledger.read(run_id), total=info.head)
            if status not in _ENDED:
                lines = [ln for ln in lines if not ln.startswith(("DONE:", "END:"))]
            for line in lines[printed:]:
                out.print(line, markup=False)
            printed = len(lines)
            if status in _ENDED:
                return cluster, run_id
            time.sleep(0.25)
    except TelicError as exc:
        cluster.close()
        _fail(str(exc))


@cluster_app.command("status")
def status(
    ray: Annotated[
        str,
        typer.Option("--ray", envvar="TELIC_RAY_ADDRESS", help="The Ray cluster's address."),
    ] = "auto",
    db: DbOption = DEFAULT_DB,
    as_json: JsonFlag = False,
) -> None:
    """The cluster's nodes, the runs each one hosts, and the runs' leases with their ages."""
    cluster = cluster_of(ray, db)
    try:
        from telic.cluster.status import cluster_status

        report = cluster_status(cluster)
    except TelicError as exc:
        _fail(str(exc))
    finally:
        cluster.close()
    if as_json:
        _print_json(report)
        return
    _print_status(report)


def _print_status(report: dict[str, Any]) -> None:
    nodes = Table("node", "address", "alive", "host", "runs", "resources")
    for n in report["nodes"]:
        nodes.add_row(
            n["node"][:12],
            n["address"],
            "yes" if n["alive"] else "no",
            n["host"] or "",
            str(len(n["runs"])),
            ", ".join(f"{k}={v:g}" for k, v in sorted(n["resources"].items())),
        )
    out.print(nodes)
    leases = Table("run", "status", "holder", "node", "epoch", "age s", "expires in s")
    for le in report["leases"]:
        leases.add_row(
            le["run"],
            le["status"],
            le["holder"],
            le["node"][:12],
            str(le["epoch"]),
            f"{le['age_s']:.1f}",
            "released" if le["released"] else f"{le['expires_in_s']:.1f}",
        )
    out.print(leases)
