"""The ``telic`` commands around the server: ``serve``, ``token``, ``approve``, ``deny``,
``approvals`` and ``leases``. Registered on :data:`telic.cli.app`."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from telic.access import SCOPES, TokenStore
from telic.cli import (  # the CLI's own helpers: this module is part of it
    DEFAULT_DB,
    CaptureFlag,
    DbOption,
    JsonFlag,
    OtlpOption,
    RunArg,
    _fail,  # pyright: ignore[reportPrivateUsage]
    _ledger,  # pyright: ignore[reportPrivateUsage]
    _otel,  # pyright: ignore[reportPrivateUsage]
    _print_json,  # pyright: ignore[reportPrivateUsage]
    app,
    out,
)
from telic.cli_cluster import RayOption, cluster_of
from telic.clock import SystemClock
from telic.errors import ConfigError
from telic.kernel.approval import ENDED, decide
from telic.state import RunState

__all__ = ["is_loopback"]

token_app = typer.Typer(help="Create, revoke and list access tokens for `telic serve`.")
app.add_typer(token_app, name="token")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(
                ipaddress.ip_address(info[4][0]).is_loopback
                for info in socket.getaddrinfo(host, None)
            )
        except OSError:
            return False


@app.command()
def serve(
    db: DbOption = DEFAULT_DB,
    host: Annotated[
        str, typer.Option("--host", help="Address to bind (loopback unless you say otherwise).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8421,
    anonymous_read: Annotated[
        bool,
        typer.Option("--anonymous-read", help="Let requests without a token read (loopback only)."),
    ] = False,
    spec_dir: Annotated[
        Path, typer.Option("--spec-dir", help="Where specs posted to POST /runs are kept.")
    ] = Path(".telic/specs"),
    max_body: Annotated[
        int, typer.Option("--max-body", help="Largest request body, in bytes.")
    ] = 1024 * 1024,
    otlp_endpoint: OtlpOption = None,
    capture_content: CaptureFlag = False,
    ray: RayOption = None,
    lease_ttl: Annotated[
        float,
        typer.Option(
            "--lease-ttl",
            help="Seconds a run's lease lasts unrenewed: how soon another server on the "
            "ledger takes over the runs of a server that died.",
        ),
    ] = 10.0,
    holder: Annotated[
        str | None,
        typer.Option("--holder", help="The name this server holds leases under (unique)."),
    ] = None,
    stream_workers: Annotated[
        int,
        typer.Option(
            "--stream-workers",
            help="Processes that serve the SSE streams (each follows the ledger), so that "
            "fanning out to many clients never slows the kernel; 0 serves them in-process.",
        ),
    ] = 0,
) -> None:
    """Serve the HTTP API (runs, transitions, live events, approvals) on a ledger; with --ray,
    the runs it starts are hosted on a Ray cluster."""
    try:
        import uvicorn

        from telic.serve import Settings, create_app
        from telic.serve.handoff import uvicorn_options
        from telic.serve.workers import StreamWorkers
    except ImportError:
        _fail("telic serve needs the serve extra: pip install 'telic[serve]'")
    if ray is not None:
        cluster_of(ray, db).close()  # a clear line now if the ledger or the cluster is wrong
    loopback = is_loopback(host)
    if anonymous_read and not loopback:
        _fail(f"--anonymous-read is refused on {host}: it is not a loopback address")
    with _ledger(db, create=True) as ledger:
        if not loopback and not TokenStore(ledger).active():
            _fail(
                f"refusing to bind {host} (not loopback) without tokens: "
                "create one with `telic token create NAME --scope read`"
            )
        if not (lease_ttl > 0 and lease_ttl <= 7 * 24 * 3600):
            _fail(f"--lease-ttl must be a number of seconds in (0, 604800], not {lease_ttl:g}")
        try:
            StreamWorkers.check(ledger, stream_workers)
        except ConfigError as exc:
            _fail(f"--stream-workers: {exc}")
        settings = Settings(
            anonymous_read=anonymous_read,
            spec_dir=spec_dir,
            max_body=max_body,
            host=host,
            lease_ttl_s=lease_ttl,
            holder=holder,
            ray=ray,
            stream_workers=stream_workers,
        )
        processors = _otel(otlp_endpoint, capture_content, db)
        api = create_app(ledger, settings=settings, processors=processors)
        out.print(f"telic serve on http://{host}:{port}  ledger {ledger.url}", markup=False)
        # Streams never end by themselves: on SIGTERM they get a few seconds, then are cut
        # (their clients reconnect with Last-Event-ID), so that the server does stop.
        uvicorn.run(
            api,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
            **uvicorn_options(),  # lets streams be handed to the stream workers
        )


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="The identity the token authenticates as.")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", help=f"What it may do ({', '.join(SCOPES)}); repeat for several."),
    ],
    db: DbOption = DEFAULT_DB,
    as_json: JsonFlag = False,
) -> None:
    """Create a token; it is printed once and stored hashed."""
    with _ledger(db, create=True) as ledger:
        token, info = TokenStore(ledger).create(name, scope)
        if as_json:
            _print_json({"name": info.name, "scopes": list(info.scopes), "token": token})
        else:
            out.print(token, markup=False)


@token_app.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Argument(help="The token's name.")], db: DbOption = DEFAULT_DB
) -> None:
    """Revoke a token: it authenticates no more, in every server on the ledger."""
    with _ledger(db) as ledger:
        TokenStore(ledger).revoke(name, by="cli")
        out.print(f"revoked {name}", markup=False)


@token_app.command("list")
def token_list(db: DbOption = DEFAULT_DB, as_json: JsonFlag = False) -> None:
    """List tokens (names and scopes; the tokens themselves are not stored)."""
    with _ledger(db) as ledger:
        tokens = TokenStore(ledger).list()
        if as_json:
            _print_json(
                [{"name": t.name, "scopes": list(t.scopes), "revoked": t.revoked} for t in tokens]
            )
            return
        table = Table("name", "scopes", "status")
        for t in tokens:
            table.add_row(t.name, ",".join(t.scopes), "revoked" if t.revoked else "active")
        out.print(table)


def _decide(db: str, run_id: str, proposal: int, granted: bool, reason: str, by: str) -> None:
    with _ledger(db) as ledger:
        t = decide(
            ledger,
            run_id,
            proposal,
            granted=granted,
            by=by,
            reason=reason,
            now_us=SystemClock().now_us,
        )
        out.print(f"{t.kind} at seq {t.seq} of {run_id}", markup=False)


ProposalArg = Annotated[
    int, typer.Argument(help="The proposal's seq (see `telic approvals`).", min=1)
]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (recorded).")]
ByOption = Annotated[
    str, typer.Option("--by", envvar="USER", help="Who decides (recorded; default: $USER).")
]


@app.command()
def approve(
    run_id: RunArg,
    proposal: ProposalArg,
    reason: ReasonOption = "",
    by: ByOption = "cli",
    db: DbOption = DEFAULT_DB,
) -> None:
    """Approve a high-impact call a run waits for; the run goes on."""
    _decide(db, run_id, proposal, True, reason, by)


@app.command()
def deny(
    run_id: RunArg,
    proposal: ProposalArg,
    reason: ReasonOption = "",
    by: ByOption = "cli",
    db: DbOption = DEFAULT_DB,
) -> None:
    """Deny a high-impact call a run waits for; the proposal is rejected with the reason."""
    _decide(db, run_id, proposal, False, reason or "denied", by)


@app.command()
def approvals(db: DbOption = DEFAULT_DB, as_json: JsonFlag = False) -> None:
    """List the high-impact calls that wait for a decision, in every run."""
    with _ledger(db) as ledger:
        rows: list[dict[str, Any]] = []
        for info in ledger.runs():
            if info.head == 0:
                continue
            state = RunState(ledger.state_at(info.id))
            if state.status in ENDED:
                continue
            for proposal, a in sorted(state.pending_approvals.items(), key=lambda kv: kv[1].seq):
                made = ledger.get(info.id, int(proposal)).data
                rows.append(
                    {
                        "run": info.id,
                        "proposal": int(proposal),
                        "agent": a.agent,
                        "tool": a.tool,
                        "args": made.get("args", {}).get("args", {}),
                    }
                )
        if as_json:
            _print_json(rows)
            return
        if not rows:
            out.print("no approvals wait", markup=False)
            return
        table = Table("run", "proposal", "agent", "tool", "args")
        for r in rows:
            table.add_row(r["run"], str(r["proposal"]), r["agent"], r["tool"], str(r["args"]))
        out.print(table)


@app.command()
def leases(db: DbOption = DEFAULT_DB, as_json: JsonFlag = False) -> None:
    """Who owns which run: every run lease, its holder, epoch, age and time left."""
    with _ledger(db, readonly=True) as ledger:
        now = ledger.leases.now_us()
        rows: list[dict[str, Any]] = []
        for lease in ledger.leases.all():
            state = "released" if lease.released else ("live" if lease.live(now) else "expired")
            rows.append(
                {
                    "run": lease.run_id,
                    "holder": lease.holder,
                    "node": lease.node,
                    "epoch": lease.epoch,
                    "state": state,
                    "age_s": round((now - lease.acquired_us) / 1e6, 3),
                    "renewed_s_ago": round((now - lease.renewed_us) / 1e6, 3),
                    "left_s": round(max(lease.remaining_s(now), 0.0), 3)
                    if state == "live"
                    else 0.0,
                    "ttl_s": lease.ttl_us / 1e6,
                }
            )
        if as_json:
            _print_json(rows)
            return
        if not rows:
            out.print("no leases: no run on this ledger was driven under a lease", markup=False)
            return
        table = Table("run", "holder", "node", "epoch", "state", "age", "renewed", "left")
        for r in rows:
            table.add_row(
                r["run"],
                r["holder"],
                r["node"],
                str(r["epoch"]),
                r["state"],
                f"{r['age_s']:.1f}s",
                f"{r['renewed_s_ago']:.1f}s ago",
                f"{r['left_s']:.1f}s",
            )
        out.print(table)
