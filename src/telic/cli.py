"""The ``telic`` command line: run the reference run, and inspect, replay, fork, resume and
verify runs in any ledger. Uses only telic's public API."""

from __future__ import annotations

if __name__ == "__main__":
    # `python -m telic.cli` runs this file as `__main__`, but the command modules register on
    # `telic.cli`: run that module, not a second, half-registered copy of this one.
    from telic.cli import main as _main

    _main()
    raise SystemExit(0)

import fnmatch
import json
import os
import sys
from collections.abc import Awaitable, Callable, Generator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from telic.clock import Clock, SystemClock, VirtualClock
from telic.errors import ChainBroken, RunNotResumable, TelicError
from telic.events import EventKernel
from telic.kernel import Kernel, Run
from telic.ledger import BaseLedger, open_ledger
from telic.state import RunState
from telic.statediff import state_diff
from telic.transcript import render

if TYPE_CHECKING:
    from telic.spec import BuiltRun

app = typer.Typer(
    name="telic",
    help="telic: a kernel for LLM agents. Every step is a typed, hash-chained transition.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

DEFAULT_DB = os.path.join(".telic", "ledger.db")

DbOption = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="TELIC_DB",
        help="Ledger URL or SQLite path (memory://, sqlite:///path, postgresql://...).",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
OtlpOption = Annotated[
    str | None,
    typer.Option(
        "--otlp-endpoint",
        help="Export OpenTelemetry GenAI spans live to this OTLP/HTTP endpoint (a base URL such "
        "as http://localhost:4318, or its /v1/traces URL); OTEL_EXPORTER_OTLP_ENDPOINT works "
        "too. Needs telic[otel].",
    ),
]
CaptureFlag = Annotated[
    bool,
    typer.Option(
        "--capture-content",
        help="Put prompts, completions, tool arguments and results in the spans (off by "
        "default, as the GenAI conventions ask).",
    ),
]
RunArg = Annotated[str, typer.Argument(help="The run id (see `telic runs`).")]


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"telic: {message}", markup=False)
    raise typer.Exit(code)


@contextmanager
def _ledger(db: str, *, create: bool = False, readonly: bool = False) -> Generator[BaseLedger]:
    """Open the ledger (``readonly``: for reading only, creating nothing, so that a ledger in
    a read-only place can be inspected); map every telic error to one line on stderr and exit
    1."""
    if not create and "://" not in db:
        try:
            found = Path(db).exists()
        except OSError as exc:  # a directory on the way that cannot be read
            _fail(f"cannot open ledger at {db}: {exc.strerror or exc}")
        if not found:
            _fail(f"no ledger at {db}: run `telic demo` first, or pass --db")
    try:
        ledger = open_ledger(db, readonly=True) if readonly else open_ledger(db)
    except TelicError as exc:
        _fail(str(exc))
    try:
        yield ledger
    except TelicError as exc:
        _fail(str(exc))
    finally:
        ledger.close()


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")


# -- the reference run ---------------------------------------------------------------------


def _otel(endpoint: str | None, capture_content: bool, db: str) -> list[Any]:
    """The OpenTelemetry processor for ``--otlp-endpoint`` (or the OTEL_EXPORTER_OTLP_*
    variables), or none: an exporter process that reads the ledger ``db`` (in-process for an
    in-memory ledger)."""
    if not (endpoint or any(os.environ.get(v) for v in _OTLP_VARIABLES)):
        return []
    try:
        from telic.otel import live_processor
    except TelicError as exc:
        _fail(str(exc))
    try:
        return [live_processor(endpoint, db, capture_content=capture_content or None)]
    except TelicError as exc:
        _fail(str(exc))


_OTLP_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def _drive(
    ledger: BaseLedger,
    clock: Clock,
    start: Callable[[Kernel], Any],
    emit: Callable[[str], None],
    finish: Callable[[], Awaitable[None]] | None = None,
    processors: list[Any] | None = None,
) -> Run:
    """Boot or resume a run, printing its transcript from the ledger as ticks complete;
    ``finish`` runs last, on the run's loop (e.g. to close model clients). ``processors``
    (exporters) see every committed transition through an event kernel."""

    async def main() -> Run:
        if processors:
            async with EventKernel(ledger, clock=clock, processors=processors) as events:
                return await drive(Kernel(ledger, clock=clock, publish=events.publish))
        return await drive(Kernel(ledger, clock=clock))

    async def drive(kernel: Kernel) -> Run:
        run: Run = await start(kernel)
        printed = 0

        def flush() -> None:
            nonlocal printed
            info = ledger.run(run.id)
            lines = render(ledger.read(run.id), total=info.head)
            if not run.done:
                lines = [ln for ln in lines if not ln.startswith(("DONE:", "END:"))]
            for line in lines[printed:]:
                emit(line)
            printed = len(lines)

        flush()
        try:
            while await run.step():
                flush()
        finally:
            await run.close()
            if finish is not None:
                await finish()
        flush()
        return run

    return clock.run(main())


def _write_artifacts(ledger: BaseLedger, run_id: str, directory: Path) -> list[Path]:
    state = RunState(ledger.state_at(run_id))
    written: list[Path] = []
    if not state.artifacts:
        return written
    directory.mkdir(parents=True, exist_ok=True)
    for name, meta in state.artifacts.items():
        content = ledger.get(run_id, meta.seq).data["content"]
        path = directory / name
        text = (
            content
            if isinstance(content, str)
            else json.dumps(content, indent=2, ensure_ascii=False) + "\n"
        )
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


@app.command()
def demo(
    db: DbOption = DEFAULT_DB,
    seed: Annotated[
        int | None,
        typer.Option(help="Seed of the fault plan and the world (default: the reference seed)."),
    ] = None,
    instant: Annotated[
        bool,
        typer.Option(
            "--instant",
            help="Run on a virtual clock, as fast as possible; the same seed gives a byte-identical trace.",
        ),
    ] = False,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for the artifacts.")] = Path(
        ".telic/out"
    ),
    otlp_endpoint: OtlpOption = None,
    capture_content: CaptureFlag = False,
) -> None:
    """Run the reference run: plan a 3-day Basel to Ticino trip under CHF 600, offline."""
    from telic.demo import DEFAULT_SEED, build

    config, _ = build(DEFAULT_SEED if seed is None else seed)
    clock: Clock = VirtualClock() if instant else SystemClock()
    processors = _otel(otlp_endpoint, capture_content, db)
    with _ledger(db, create=True) as ledger:
        run = _drive(
            ledger,
            clock,
            lambda k: k.boot(config),
            lambda line: out.print(line, markup=False),
            processors=processors,
        )
        info = ledger.run(run.id)
        files = _write_artifacts(ledger, run.id, out_dir / run.id)
        out.print(
            f"run {run.id}  head {info.head_hash.hex()[:16]}  ledger {ledger.url}",
            style="dim",
            markup=False,
        )
        for f in files:
            out.print(f"wrote {f}", style="dim", markup=False)


@app.command()
def resume(
    run_id: RunArg,
    db: DbOption = DEFAULT_DB,
    seed: Annotated[
        int | None,
        typer.Option(help="A new seed for what happens from here on (default: the run's own)."),
    ] = None,
    instant: Annotated[bool, typer.Option("--instant", help="Run on a virtual clock.")] = False,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for the artifacts.")] = Path(
        ".telic/out"
    ),
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Go on with another model than the run was booted with (a spec run): a "
            "counterfactual, recorded in run.resumed.",
        ),
    ] = None,
    instructions: Annotated[
        str | None,
        typer.Option(
            "--instructions",
            help="Go on with other instructions for the model agents (a counterfactual).",
        ),
    ] = None,
    otlp_endpoint: OtlpOption = None,
    capture_content: CaptureFlag = False,
) -> None:
    """Continue a run (a fork, or one interrupted by a crash) with the kernel."""
    from telic.demo import build

    processors = _otel(otlp_endpoint, capture_content, db)
    with _ledger(db) as ledger:
        booted = next(iter(ledger.read(run_id, 1, 1)), None)
        recorded: dict[str, Any] = (
            booted.data.get("config", {})
            if booted is not None and booted.kind == "run.booted"
            else {}
        )
        spec_cfg = recorded.get("spec")
        if spec_cfg is not None:
            if instant:
                _fail(
                    "--instant cannot resume a run booted from a spec: model minds need real time"
                )
            if seed is not None:
                _fail("--seed does not apply to a run booted from a spec; leave it out")
            _resume_spec(ledger, run_id, out_dir, processors, model, instructions)
            return
        if model is not None or instructions is not None:
            _fail("--model and --instructions apply to runs booted from a spec (`telic run`)")
        demo_cfg = recorded.get("demo")
        if demo_cfg is None:
            _fail(
                str(
                    RunNotResumable(
                        run_id,
                        "only reference-run ledgers and runs booted by `telic run` can be "
                        "resumed from the CLI",
                    )
                )
            )
        config, _ = build(demo_cfg["seed"] if seed is None else seed)
        clock: Clock = VirtualClock() if instant else SystemClock()
        run = _drive(
            ledger,
            clock,
            lambda k: k.resume(run_id, config, reason="telic resume"),
            lambda line: out.print(line, markup=False),
            processors=processors,
        )
        for f in _write_artifacts(ledger, run.id, out_dir / run.id):
            out.print(f"wrote {f}", style="dim", markup=False)


def _resume_spec(
    ledger: BaseLedger,
    run_id: str,
    out_dir: Path,
    processors: list[Any],
    model: str | None = None,
    instructions: str | None = None,
) -> None:
    """Resume a run booted from a spec: rebuild its configuration from the recorded spec
    (with the counterfactual changes recorded since, and those asked for now)."""
    from telic.spec import build_run, recorded_spec

    recorded = recorded_spec(ledger, run_id)
    assert recorded is not None
    changes: dict[str, Any] = {}
    if model is not None and model != recorded.model:
        changes["model"] = model
    overrides = dict(recorded.overrides)
    if instructions is not None:
        overrides["instructions"] = changes["instructions"] = instructions
    clock = SystemClock()
    try:
        built = build_run(
            recorded.path,
            model=model or recorded.model,
            clock=clock,
            base_dir=recorded.base_dir,
            text=recorded.text,
            overrides=overrides,
            served=recorded.served,
        )
        _check_endpoints(built)
    except TelicError as exc:
        _fail(str(exc))
    run = _drive(
        ledger,
        clock,
        lambda k: k.resume(
            run_id, built.config, reason="telic resume", counterfactual=changes or None
        ),
        lambda line: out.print(line, markup=False),
        built.aclose,
        processors,
    )
    _report_spec_run(ledger, run.id, out_dir)


def _check_endpoints(built: BuiltRun) -> None:
    """Fail in seconds, in one line, when a model endpoint does not accept connections."""
    from telic.minds.providers import check_endpoint

    seen: set[str] = set()
    for mind in built.minds:
        if mind.provider.base_url not in seen:
            seen.add(mind.provider.base_url)
            check_endpoint(mind.provider)


def _report_spec_run(ledger: BaseLedger, run_id: str, out_dir: Path) -> None:
    """The run id, the artifacts written; exit 1 when the run did not complete."""
    info = ledger.run(run_id)
    files = _write_artifacts(ledger, run_id, out_dir / run_id)
    out.print(
        f"run {run_id}  head {info.head_hash.hex()[:16]}  ledger {ledger.url}",
        style="dim",
        markup=False,
    )
    for f in files:
        out.print(f"wrote {f}", style="dim", markup=False)
    status = RunState(ledger.state_at(run_id)).status
    if status != "completed":
        _fail(f"run {run_id} ended {status}, not completed: see `telic show {run_id}`")


@app.command("run")
def run_spec(
    spec: Annotated[
        Path,
        typer.Argument(
            metavar="SPEC", help="The run spec: a TOML file (see docs/models.md, 'Run specs')."
        ),
    ],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Model for every agent without its own, e.g. openai:gpt-4.1-mini "
            "(replaces the spec's `model`).",
        ),
    ] = None,
    db: DbOption = DEFAULT_DB,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for the artifacts.")] = Path(
        ".telic/out"
    ),
    otlp_endpoint: OtlpOption = None,
    capture_content: CaptureFlag = False,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            envvar="TELIC_RAY_ADDRESS",
            help="Host the run on this Ray cluster (host:port, or auto) over a PostgreSQL --db "
            "(see docs/distributed.md). Needs telic[ray].",
        ),
    ] = None,
) -> None:
    """Run a swarm described in a TOML spec (goal, agents, tools, budget, policy) with model
    minds; exit 1 unless the run completes."""
    from telic.spec import build_run

    if ray is not None:
        from telic.cli_cluster import run_on_cluster

        cluster, run_id = run_on_cluster(ray, spec, model=model, db=db)
        try:
            _report_spec_run(cluster.ledger, run_id, out_dir)
        finally:
            cluster.close()
        return
    clock = SystemClock()  # model minds need real time
    processors = _otel(otlp_endpoint, capture_content, db)
    try:
        built = build_run(spec, model=model, clock=clock)
        _check_endpoints(built)
    except TelicError as exc:
        _fail(str(exc))
    with _ledger(db, create=True) as ledger:
        run = _drive(
            ledger,
            clock,
            lambda k: k.boot(built.config),
            lambda line: out.print(line, markup=False),
            built.aclose,
            processors,
        )
        _report_spec_run(ledger, run.id, out_dir)


# -- inspecting runs -----------------------------------------------------------------------


@app.command()
def runs(db: DbOption = DEFAULT_DB, as_json: JsonFlag = False) -> None:
    """List runs in the order they were created."""
    with _ledger(db, readonly=True) as ledger:
        rows: list[dict[str, Any]] = []
        for info in ledger.runs():
            try:
                state = RunState(ledger.state_at(info.id))
            except TelicError as exc:  # this run is damaged: the others stay readable
                seq = exc.seq if isinstance(exc, ChainBroken) else None
                damaged = "damaged" if seq is None else f"damaged@{seq}"
                state = RunState({"goal": "", "status": damaged})
            rows.append(
                {
                    "id": info.id,
                    "goal": state.goal,
                    "status": state.status,
                    "parent": None
                    if info.parent is None
                    else {"run": info.parent, "seq": info.fork_seq},
                    "transitions": info.head,
                    "head_hash": info.head_hash.hex(),
                }
            )
        if as_json:
            _print_json(rows)
            return
        table = Table("id", "status", "transitions", "parent", "goal")
        for r in rows:
            parent = f"{r['parent']['run']}@{r['parent']['seq']}" if r["parent"] else ""
            table.add_row(r["id"], r["status"], str(r["transitions"]), parent, r["goal"])
        out.print(table)


@app.command()
def show(run_id: RunArg, db: DbOption = DEFAULT_DB) -> None:
    """The tick-level transcript of a run, rendered from the ledger alone."""
    with _ledger(db, readonly=True) as ledger:
        info = ledger.run(run_id)
        for line in render(ledger.read(run_id), total=info.head):
            out.print(line, markup=False)


@app.command()
def trace(
    run_id: RunArg,
    db: DbOption = DEFAULT_DB,
    from_seq: Annotated[int, typer.Option("--from", help="First sequence number.")] = 1,
    to_seq: Annotated[int | None, typer.Option("--to", help="Last sequence number.")] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="Only kinds matching this glob, e.g. 'tool.*'.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """The transitions of a run."""
    with _ledger(db, readonly=True) as ledger:
        info = ledger.run(run_id)
        if (
            from_seq < 1
            or from_seq > max(info.head, 1)
            or (to_seq is not None and to_seq < from_seq)
        ):
            _fail(f"bad range {from_seq}..{to_seq}: run {run_id} holds 1..{info.head}")
        table = (
            None
            if as_json
            else Table("seq", "tick", "kind", "agent", "causes", "payload", box=None)
        )
        for t in ledger.read(run_id, from_seq, to_seq):
            if kind is not None and not fnmatch.fnmatchcase(t.kind, kind):
                continue
            if as_json:
                _print_json(t.to_json())
            else:
                assert table is not None
                payload = json.dumps(t.data, ensure_ascii=False)
                table.add_row(
                    str(t.seq),
                    str(t.tick),
                    t.kind,
                    t.agent or "",
                    ",".join(map(str, t.causes)),
                    payload[:100] + ("..." if len(payload) > 100 else ""),
                )
        if table is not None:
            out.print(table)


@app.command()
def state(
    run_id: RunArg,
    db: DbOption = DEFAULT_DB,
    at: Annotated[
        int | None, typer.Option("--at", help="Sequence number (default: the head).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """The folded state of a run at a point."""
    from telic.reducer import state_hash

    with _ledger(db, readonly=True) as ledger:
        raw = ledger.state_at(run_id, at)
        if as_json:
            _print_json(raw)
            return
        s = RunState(raw)
        out.print(
            f"run {run_id} at seq {s.seq} (tick {s.tick}): {s.status}, progress {s.progress:.2f}, state hash {state_hash(raw)[:16]}",
            markup=False,
        )
        out.print(
            f"spent: {json.dumps(raw['spent'])}  budget: {json.dumps(raw['budget'])}", markup=False
        )
        for name, a in s.agents_in_order():
            line = f"  {name:<12} {a.role:<12} {a.status:<10} restarts={a.restarts}"
            own = s.agent_budgets.get(name)
            if own is not None:  # its own budget: what it spent of each limit
                line += "  own budget " + ", ".join(
                    f"{d} {own.spent.of(d):g}/{limit:g}" for d, limit in own.limits.items()
                )
            out.print(line, markup=False)
        for key, v in s.plan.items():
            out.print(
                f"  plan.{key} = {json.dumps(v.value, ensure_ascii=False)[:120]}", markup=False
            )


@app.command()
def diff(
    run_id: RunArg,
    seq_a: Annotated[int, typer.Argument(help="The earlier sequence number.")],
    seq_b: Annotated[int, typer.Argument(help="The later sequence number.")],
    db: DbOption = DEFAULT_DB,
    as_json: JsonFlag = False,
) -> None:
    """What changed in a run's state between two sequence numbers."""
    if seq_b < seq_a:
        _fail(f"{seq_a} comes after {seq_b}: give the earlier sequence number first", 2)
    with _ledger(db, readonly=True) as ledger:
        changes = list(state_diff(ledger.state_at(run_id, seq_a), ledger.state_at(run_id, seq_b)))
        if as_json:
            _print_json([c.model_dump() for c in changes])
            return
        for c in changes:
            before = json.dumps(c.before, ensure_ascii=False)[:80]
            after = json.dumps(c.after, ensure_ascii=False)[:80]
            out.print(f"{c.path}: {before} -> {after}", markup=False)


@app.command()
def replay(
    run_id: RunArg,
    db: DbOption = DEFAULT_DB,
    to: Annotated[
        int | None, typer.Option("--to", help="Replay up to this sequence number.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Rebuild a run's state by folding its transitions; check it against the recorded hashes."""
    with _ledger(db, readonly=True) as ledger:
        report = ledger.replay(run_id, to)
        if as_json:
            _print_json(
                {
                    "run": run_id,
                    "to": report.to,
                    "folded": report.folded,
                    "checked": report.checked_hashes,
                    "state_hash": report.state_hash,
                    "ok": True,
                }
            )
        else:
            out.print(
                f"replayed {report.folded} transitions of {run_id}; {report.checked_hashes} recorded state hashes match; state hash {report.state_hash[:16]}",
                markup=False,
            )


@app.command()
def fork(
    run_id: RunArg,
    at: Annotated[
        int, typer.Option("--at", help="The last sequence number the fork shares with its parent.")
    ],
    db: DbOption = DEFAULT_DB,
    as_json: JsonFlag = False,
) -> None:
    """Fork a run at a sequence number (copy-on-write); print the new run's id."""
    with _ledger(db) as ledger:
        new_id = Kernel(ledger).fork(run_id, at)
        if as_json:
            _print_json({"id": new_id, "parent": {"run": run_id, "seq": at}})
        else:
            out.print(new_id, markup=False)


@app.command("export-otel")
def export_otel(
    run_id: RunArg,
    db: DbOption = DEFAULT_DB,
    otlp_endpoint: OtlpOption = None,
    capture_content: CaptureFlag = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the spans as JSON lines instead of sending them.")
    ] = False,
) -> None:
    """Export a run's history as OpenTelemetry GenAI spans, with the trace and span ids a live
    export gives (--otlp-endpoint, or OTEL_EXPORTER_OTLP_ENDPOINT)."""
    try:
        from telic.otel import OtlpHttpSink, default_resource, resolve_traces_url, run_spans
    except TelicError as exc:
        _fail(str(exc))
    if not as_json and not (otlp_endpoint or any(os.environ.get(v) for v in _OTLP_VARIABLES)):
        _fail(
            "no OTLP endpoint: pass --otlp-endpoint URL, set OTEL_EXPORTER_OTLP_ENDPOINT, or --json"
        )
    with _ledger(db) as ledger:
        spans = run_spans(ledger, run_id, capture_content=capture_content)
    if as_json:
        for s in spans:
            _print_json(s.to_json())
        return
    try:
        sink = OtlpHttpSink(resolve_traces_url(otlp_endpoint), default_resource())
    except TelicError as exc:
        _fail(str(exc))
    sent = 0
    for i in range(0, len(spans), 1024):
        chunk = spans[i : i + 1024]
        if not sink.export(chunk):
            sink.close()
            _fail(
                f"the OTLP endpoint {sink.url} did not accept the spans ({sent} of {len(spans)} sent)"
            )
        sent += len(chunk)
    sink.close()
    out.print(f"exported {sent} spans of {run_id} to {sink.url}", markup=False)


@app.command("mcp")
def mcp_server(db: DbOption = DEFAULT_DB) -> None:
    """Serve this ledger's runs to an MCP client over stdio (list, transcript, trace, state,
    diff, verify, fork, resume); the client acts as the local OS user. Needs telic[mcp]."""
    if "://" not in db and not Path(db).exists():
        _fail(f"no ledger at {db}: run `telic demo` first, or pass --db")
    try:
        from telic.mcp import build_server
    except TelicError as exc:
        _fail(str(exc))
    try:
        server = build_server(db)
    except TelicError as exc:
        _fail(str(exc))
    server.run()


@app.command()
def compare(
    run_a: Annotated[str, typer.Argument(help="The first run (e.g. the parent).")],
    run_b: Annotated[str, typer.Argument(help="The second run (e.g. its fork).")],
    db: DbOption = DEFAULT_DB,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="At most this many decisions per run.")
    ] = 100,
    as_json: JsonFlag = False,
) -> None:
    """Compare two runs: the first seq where they diverge, what each decided from there, and
    the diff of their final states."""
    from telic.compare import compare as compare_runs

    with _ledger(db) as ledger:
        c = compare_runs(ledger, run_a, run_b, limit=limit)
        if as_json:
            _print_json(c.model_dump(mode="json"))
            return
        where = (
            "identical"
            if c.diverged_at is None
            else f"share seq 1..{c.shared}, diverge at seq {c.diverged_at}"
        )
        out.print(f"{c.a.run} vs {c.b.run} ({c.relation}): {where}", markup=False)
        for label, side in (("A", c.a), ("B", c.b)):
            out.print(
                f"{label} {side.run}: {side.status}, progress {side.progress:.2f}, head {side.head}",
                markup=False,
            )
            for d in side.decisions:
                agent = d.agent or "kernel"
                out.print(
                    f"  {d.seq:>6} t{d.tick:02d} {agent:<12} {d.kind:<20} {d.summary}",
                    markup=False,
                )
            if side.more:
                out.print(f"  ... {side.more} more (--limit)", markup=False)
        out.print(f"final state: {len(c.final_diff)} paths differ", markup=False)
        for ch in c.final_diff:
            before = json.dumps(ch.before, ensure_ascii=False)[:80]
            after = json.dumps(ch.after, ensure_ascii=False)[:80]
            out.print(f"  {ch.path}: {before} -> {after}", markup=False)


@app.command()
def verify(
    run_id: Annotated[str | None, typer.Argument(help="The run to verify.")] = None,
    db: DbOption = DEFAULT_DB,
    all_runs: Annotated[bool, typer.Option("--all", help="Verify every run.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Recompute the hash chain; exit 1 and name the first bad sequence number if broken."""
    if run_id is None and not all_runs:
        _fail("name a run or pass --all", 2)
    with _ledger(db, readonly=True) as ledger:
        ids = [r.id for r in ledger.runs()] if all_runs else [run_id or ""]
        bad = 0
        reports: list[dict[str, Any]] = []
        for rid in ids:
            r = ledger.verify(rid)
            reports.append(
                {
                    "run": rid,
                    "ok": r.ok,
                    "checked": r.checked,
                    "first_bad": r.first_bad,
                    "reason": r.reason,
                }
            )
            if r.ok:
                if not as_json:
                    out.print(
                        f"{rid}: ok ({r.checked} transitions, head {r.head_hash[:16]})",
                        markup=False,
                    )
            else:
                bad += 1
                if not as_json:
                    err.print(
                        f"telic: {rid}: chain broken at seq {r.first_bad}: {r.reason}", markup=False
                    )
        if as_json:
            _print_json(reports)
        if bad:
            raise typer.Exit(1)


@app.command()
def sim(
    seeds: Annotated[int, typer.Option(help="How many seeds to run.")] = 100,
    start: Annotated[int, typer.Option(help="The first seed.")] = 0,
    seed: Annotated[int | None, typer.Option(help="Run this one seed.")] = None,
    plan: Annotated[
        str | None, typer.Option(help="With --seed: run under this fault plan (JSON).")
    ] = None,
    as_json: JsonFlag = False,
    no_shrink: Annotated[
        bool, typer.Option("--no-shrink", help="Do not minimise failing fault plans.")
    ] = False,
    real_timeout: Annotated[
        float, typer.Option(help="Real seconds a simulated process may take before it is hung.")
    ] = 30.0,
) -> None:
    """Run seeded swarms under injected faults on the virtual clock and check invariants
    (the same as ``python -m telic.sim``; see docs/simulation.md)."""
    from telic.sim.cli import main as simulate

    argv = ["--seeds", str(seeds), "--start", str(start), "--real-timeout", str(real_timeout)]
    if seed is not None:
        argv += ["--seed", str(seed)]
    if plan is not None:
        argv += ["--plan", plan]
    if as_json:
        argv.append("--json")
    if no_shrink:
        argv.append("--no-shrink")
    raise typer.Exit(simulate(argv, prog="telic sim"))


import telic.cli_cluster  # noqa: E402  # pyright: ignore[reportUnusedImport]  (registers cluster)
import telic.cli_server  # noqa: E402, F401  # pyright: ignore[reportUnusedImport]  (registers serve, token, approve, deny, approvals)


def main() -> None:
    app()
