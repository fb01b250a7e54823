"""``telic serve``'s figures (issue 11), each beside its target, measured in one run.

A real uvicorn serves the app on loopback in this process, as ``telic serve
--stream-workers 1`` does (``TELIC_BENCH_STREAM_WORKERS=0`` serves the streams in-process, to
compare): the stream worker is a process of its own that follows the ledger. A writer on the
server's kernel loop (its own thread, where the server's runs tick) stands for the kernel: it
appends groups of ``BATCH`` transitions to one run and publishes them as the server's kernel
does. ``CLIENTS`` SSE followers run in another process
(``bench/serve_clients.py``, plain asyncio sockets), whose CPU time is reported:

- paced at ``RATE`` transitions/s for ``SECONDS`` s: events lost and duplicated over all
  clients, and commit-to-client latency p50 and p99 (receipt time minus the transition's
  timestamp, taken just before its commit);
- flat out: the run's throughput with the followers over its throughput with none, in
  ``ROUNDS`` rounds of one then the other (the median of the rounds' ratios); beside it, the
  floor: the same flat-out write while the same followers read a pre-encoded stream from a
  bare process (:func:`bare`), which is what the followers' own process costs the writer on
  a machine they share;
- a ``GET`` of a 100-transition page over HTTP (keep-alive client, median) over reading and
  encoding the same page in-process.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn

from harness import Figure, median
from telic.access import TokenStore
from telic.canonical import encode
from telic.serve import Settings, create_app
from telic.serve.context import Context
from telic.serve.fanout import frame_of
from telic.serve.handoff import uvicorn_options
from telic.transition import Draft

GROUP = "serve"
_CLIENTS_SCRIPT = Path(__file__).resolve().parent.parent / "serve_clients.py"
_PROFILE_SCRIPT = Path(__file__).resolve().parent.parent / "profile_serve.py"

CLIENTS = 100
RATE = 1000
SECONDS = 5
BATCH = 20
FLAT_OUT = 5000
PAGE = 100
GETS = 200
ROUNDS = 3
STREAM_WORKERS = int(os.environ.get("TELIC_BENCH_STREAM_WORKERS", "1"))
"""``telic serve --stream-workers``: 1 by default; 0 measures streams served in-process."""


def _drafts(start: int, n: int) -> list[Draft]:
    now = time.time_ns() // 1000
    return [
        Draft(
            "memory.updated",
            encode({"agent": "writer", "key": f"k{(start + i) % 16}", "value": f"v{start + i}"}),
            now,
            1,
            "writer",
        )
        for i in range(n)
    ]


async def _write(ctx: Context, run: str, total: int, rate: float | None) -> float:
    """Append ``total`` transitions in groups on the server's kernel loop (its own thread, as
    the server's runs), publishing as the kernel does; paced at ``rate``/s, or flat out.
    Returns transitions per second."""
    return await ctx.driver.call(_writing(ctx, run, total, rate))


async def _writing(ctx: Context, run: str, total: int, rate: float | None) -> float:
    publish = ctx.kernel.publish
    assert publish is not None
    t0 = time.perf_counter()
    written = 0
    while written < total:
        n = min(BATCH, total - written)
        committed = ctx.ledger.append(run, _drafts(written, n), expected=written + 1)
        publish(committed)
        written += n
        if rate is None:
            await asyncio.sleep(0)
        else:
            delay = t0 + written / rate - time.perf_counter()
            await asyncio.sleep(max(0.0, delay))
    return total / (time.perf_counter() - t0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _followers(url: str, run: str, token: str, total: int) -> asyncio.subprocess.Process:
    script = _CLIENTS_SCRIPT
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        url,
        run,
        token,
        str(CLIENTS),
        str(total),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 120)
    if line.strip() != b"ready":
        raise RuntimeError(f"the followers did not start: {line!r}")
    return proc


async def bare(blob: bytes, port: int) -> None:
    """The floor's server (``profile_serve.py --bare``): a bare asyncio process, at nice 10
    like a stream worker, that sends every client ``blob`` (a run's stream, pre-encoded) once a
    line arrives on stdin, and does nothing else."""
    os.nice(10)
    go = asyncio.Event()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nretry: 1000\n\n")
        await go.wait()
        for i in range(0, len(blob), 1 << 16):
            writer.write(blob[i : i + (1 << 16)])
            await writer.drain()
        await reader.read()
        writer.close()

    async with await asyncio.start_server(client, "127.0.0.1", port):
        print("listening", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        go.set()
        await asyncio.to_thread(sys.stdin.readline)


async def bare_server(
    directory: Path, ctx: Context, port: int, run: str = "warm"
) -> asyncio.subprocess.Process:
    """Start :func:`bare` with ``run``'s stream; write a line to its stdin to start sending,
    another to end it."""
    blob = directory / f"{run}.sse"
    if not blob.exists():
        frames = [frame_of(t, t.kind, str(t.seq)) for t in ctx.ledger.read(run)]
        blob.write_bytes(b"".join(frames))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(_PROFILE_SCRIPT),
        "--bare",
        str(blob),
        str(port),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    await proc.stdout.readline()
    return proc


async def _floor(directory: Path, ctx: Context, token: str, run: str) -> float:
    """One flat-out write of ``run`` while the followers read a pre-encoded stream of the same
    length from :func:`bare`: what the followers' own process costs the writer on this
    machine, whatever the server does. Returns transitions per second."""
    port = _free_port()
    bare_proc = await bare_server(directory, ctx, port, "base")
    assert bare_proc.stdin is not None
    proc = await _followers(f"http://127.0.0.1:{port}", "base", token, FLAT_OUT)
    bare_proc.stdin.write(b"go\n")
    rate = await _write(ctx, run, FLAT_OUT, None)
    await _result(proc)
    bare_proc.stdin.write(b"end\n")
    await bare_proc.wait()
    return rate


async def _result(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    """The followers' JSON summary (counts and milliseconds)."""
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 180)
    await proc.wait()
    result: dict[str, Any] = json.loads(line)
    return result


async def _measure(directory: Path) -> list[Figure]:
    db = directory / "ledger.db"
    app = create_app(
        str(db),
        settings=Settings(
            spec_dir=directory / "specs", resume_hosted=False, stream_workers=STREAM_WORKERS
        ),
    )
    port = _free_port()
    server = uvicorn.Server(  # as `telic serve` runs it
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            **uvicorn_options(),
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110  (uvicorn offers no event to wait on)
        await asyncio.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    ctx: Context = app.state.telic
    token, _ = TokenStore(ctx.ledger).create("bench", ["read"])
    figs: list[Figure] = []
    try:
        for run in ("base", "live", *(f"alone{i}" for i in range(ROUNDS))):
            ctx.ledger.create_run(run)
        for i in range(ROUNDS):
            ctx.ledger.create_run(f"busy{i}")
            ctx.ledger.create_run(f"floor{i}")

        await _write(ctx, "base", FLAT_OUT, None)  # the page figure's run (and a warm-up)

        total = RATE * SECONDS
        proc = await _followers(url, "live", token, total)
        await _write(ctx, "live", total, RATE)
        live = await _result(proc)
        if live["errors"] or not live["deliveries"]:
            raise RuntimeError(f"the followers got nothing: {live['errors']} {live['received']}")
        figs += [
            Figure(
                GROUP,
                f"{CLIENTS} SSE clients at {RATE}/s: events lost",
                float(live["lost"]),
                "events",
                0,
            ),
            Figure(
                GROUP,
                f"{CLIENTS} SSE clients at {RATE}/s: events duplicated",
                float(live["duplicated"]),
                "events",
                0,
            ),
            Figure(
                GROUP,
                f"{CLIENTS} SSE clients at {RATE}/s: gaps without a drop",
                float(live["gaps"]),
                "events",
                0,
                note=f"clients dropped (and resumed with Last-Event-ID): {live['drops']}",
            ),
            Figure(GROUP, "commit-to-client latency p50", float(live["p50_ms"]), "ms", None),
            Figure(
                GROUP,
                "commit-to-client latency p99",
                float(live["p99_ms"]),
                "ms",
                250,
                note=f"{live['deliveries']} deliveries in {live['reads']} reads; followers' CPU {live['cpu_s']:.1f} s "
                f"over {SECONDS} s of writing",
            ),
        ]

        # Side by side: rounds of (none, followed, the floor), each round's ratios, their median.
        ratios: list[float] = []
        floors: list[float] = []
        rounds: list[str] = []
        drops = lost = dup = 0
        cpu = 0.0
        cpu_alone = cpu_busy = 0.0  # the server process's (the kernel's) CPU while writing
        for i in range(ROUNDS):
            c0 = time.process_time()
            alone = await _write(ctx, f"alone{i}", FLAT_OUT, None)
            cpu_alone += time.process_time() - c0
            proc = await _followers(url, f"busy{i}", token, FLAT_OUT)
            c0 = time.process_time()
            busy = await _write(ctx, f"busy{i}", FLAT_OUT, None)
            cpu_busy += time.process_time() - c0
            followed = await _result(proc)
            floor = await _floor(directory, ctx, token, f"floor{i}")
            ratios.append(busy / alone)
            floors.append(floor / alone)
            rounds.append(f"{busy:,.0f}/{alone:,.0f} (floor {floor:,.0f})")
            drops += int(followed["drops"])
            lost += int(followed["lost"])
            dup += int(followed["duplicated"])
            cpu += float(followed["cpu_s"])
        figs.append(
            Figure(
                GROUP,
                f"run throughput with {CLIENTS} followers / with none",
                median(ratios),
                "x",
                0.8,
                ">=",
                f"median of {ROUNDS} rounds, transitions/s followed/alone: {', '.join(rounds)}; "
                f"lost {lost}, duplicated {dup}, drops {drops}; followers' CPU {cpu:.1f} s; "
                f"server process CPU while writing, alone {cpu_alone:.2f} s, followed "
                f"{cpu_busy:.2f} s; stream workers {STREAM_WORKERS}; the floor beside it: "
                f"{median(floors):.2f}x",
            )
        )
        figs.append(
            Figure(
                GROUP,
                f"floor: throughput with {CLIENTS} followers of a bare streaming process / none",
                median(floors),
                "x",
                None,
                note="the same followers reading a pre-encoded stream from a process that does "
                "nothing else: what their own process costs the writer on this machine",
            )
        )

        starts = [random.Random(i).randint(1, FLAT_OUT - PAGE) for i in range(GETS)]
        local: list[float] = []
        for s in starts:
            t0 = time.perf_counter()
            orjson.dumps({"items": [t.to_json() for t in ctx.ledger.read("base", s, s + PAGE - 1)]})
            local.append(time.perf_counter() - t0)
        remote: list[float] = []
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}
        ) as c:
            await c.get("/runs/base/transitions?limit=1")
            for s in starts:
                t0 = time.perf_counter()
                r = await c.get(f"/runs/base/transitions?from={s}&limit={PAGE}")
                remote.append(time.perf_counter() - t0)
                assert len(r.json()["items"]) == PAGE
        figs.append(
            Figure(
                GROUP,
                "GET of a 100-transition page / reading and encoding it in-process",
                median(remote) / median(local),
                "x",
                5,
                note=f"{median(remote) * 1000:.2f} ms vs {median(local) * 1000:.2f} ms (medians of {GETS})",
            )
        )
    finally:
        server.should_exit = True
        await serving
    return figs


def collect(repeats: int) -> list[Figure]:
    """One measuring run (it takes a minute); ``repeats`` does not apply."""
    with tempfile.TemporaryDirectory(prefix="telic-bench-serve-") as d:
        return asyncio.run(_measure(Path(d)))
