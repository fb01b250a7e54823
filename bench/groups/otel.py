"""OpenTelemetry export figures (issue 14): what the OTel processor costs a run.

The workload is the kernel group's swarm figure: 1,000 no-op agents for 10 ticks on a durable
SQLite ledger, one group commit per tick. It runs side by side in one process, interleaved
repeat by repeat, in three ways:

- ``plain``: the kernel alone (no event kernel, no processor);
- ``events``: the kernel publishing to an event kernel with a no-op processor (what the
  processor seam itself costs);
- ``otel``: the kernel publishing to an event kernel with an ``OtelProcessor`` whose OTLP/HTTP
  exporter (the SDK's) sends to a real receiver in another process on loopback;
- ``otel, endpoint down``: the same, with the exporter pointed at a closed loopback port;
- ``sdk``: as ``otel`` but through the SDK's ``OTLPSpanExporter`` (``ReadableSpan`` objects
  encoded by the SDK), to show what telic's own encoder saves.

A run's throughput is committed transitions over the time from the first tick to the end of
the last one; for ``otel`` the time also includes ``force_flush`` (every span built, encoded
and accepted by the receiver), so the figure is the whole cost of exporting, not only what the
commit path sees. The cost is ``1 - otel/plain`` of the medians. Wall-clock figures are only
as good as the machine is quiet, and so are CPU figures compared across runs (a loaded
machine makes the same work cost twice the CPU from one run to the next). The figure to read
on a shared machine is the CPU share measured inside one run: the CPU of the OTel work
(``OtelStats.cpu_s``: folding, encoding, sending, in whichever thread did it, plus the
event kernel's ``publish`` calls, timed by ``time.thread_time``) over the CPU of everything
else the same process did in the same run; both halves see the same load.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from harness import Figure, median
from telic.clock import SystemClock
from telic.events import EventKernel, NoopProcessor
from telic.kernel import AgentSpec, Budget, Kernel, RunConfig
from telic.ledger import open_ledger
from telic.minds.base import FunctionMind, View
from telic.otel import OtelProcessor, otlp_exporter
from telic.policy import Policy
from telic.proposal import Proposal
from telic.transition import Transition

GROUP = "otel"

AGENTS = 1000
TICKS = 10


def _noop(view: View) -> Proposal:
    return Proposal(action="remember", args={"key": "step", "value": view.tick})


def _config() -> RunConfig:
    return RunConfig(
        goal="bench",
        agents=[AgentSpec(f"a{i}", "worker", FunctionMind(_noop)) for i in range(AGENTS)],
        budget=Budget(ticks=TICKS + 1),
        policy=Policy(stall_ticks=0, verifier=None),
        return_condition=lambda s: False,
        progress=lambda s: 0.0,
    )


class _Result(NamedTuple):
    ticks: float
    """Seconds of the ticks."""
    total: float
    """Seconds of the ticks and the flush."""
    committed: int
    exported: int
    cpu: float
    """CPU seconds of this process (all threads) for the ticks and the flush."""
    otel_cpu: float
    """Of ``cpu``: the processor's work (``OtelStats.cpu_s``) and the publish calls."""


async def _run(url: str, endpoint: str | None, sdk: bool = False, noop: bool = False) -> _Result:
    ledger = open_ledger(url)
    processor = None
    events = None
    publish: Callable[[Sequence[Transition]], None] | None = None
    published = [0.0]
    if noop:
        events = EventKernel(ledger, processors=[NoopProcessor()])
        publish = events.publish
    elif endpoint is not None:
        processor = (
            OtelProcessor(otlp_exporter(endpoint, timeout_s=2.0))
            if sdk
            else OtelProcessor.for_endpoint(endpoint, timeout_s=2.0)
        )
        events = EventKernel(ledger, processors=[processor])
        to_events = events.publish

        def timed_publish(transitions: Sequence[Transition]) -> None:
            c = time.thread_time()
            to_events(transitions)
            published[0] += time.thread_time() - c

        publish = timed_publish

    run = await Kernel(ledger, clock=SystemClock(), publish=publish).boot(_config())
    head0 = ledger.run(run.id).head
    published[0] = 0.0
    otel0 = processor.stats.cpu_s if processor is not None else 0.0
    t0 = time.perf_counter()
    c0 = time.process_time()
    try:
        for _ in range(TICKS):
            await run.step()
        ticks = time.perf_counter() - t0
        exported = 0
        otel = 0.0
        if processor is not None:
            stats = processor.force_flush()
            exported = stats.exported
            otel = stats.cpu_s - otel0 + published[0]
        total = time.perf_counter() - t0
        cpu = time.process_time() - c0
    finally:
        await run.close()
        if events is not None:
            await events.aclose()
    committed = ledger.run(run.id).head - head0
    ledger.close()
    return _Result(ticks, total, committed, exported, cpu, otel)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_sink(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    port_file = Path(directory) / "port"
    sink = Path(__file__).resolve().parent.parent / "otlp_sink.py"
    proc = subprocess.Popen([sys.executable, str(sink), str(port_file)])
    for _ in range(500):
        if port_file.exists() and port_file.read_text():
            return proc, f"http://127.0.0.1:{port_file.read_text()}"
        time.sleep(0.01)
    proc.kill()
    raise RuntimeError("the OTLP sink did not start")


def collect(repeats: int) -> list[Figure]:
    plain: list[float] = []
    up: list[float] = []
    up_ticks: list[float] = []
    down: list[float] = []
    sdk: list[float] = []
    cpu: dict[str, list[float]] = {"plain": [], "up": [], "events": []}
    share: dict[str, list[float]] = {"up": [], "sdk": []}
    with tempfile.TemporaryDirectory() as d:
        sink, endpoint = _start_sink(d)
        dead = f"http://127.0.0.1:{_closed_port()}"
        try:
            for i in range(max(1, repeats)):
                variants = (
                    ("plain", None),
                    ("events", None),
                    ("up", endpoint),
                    ("down", dead),
                    ("sdk", endpoint),
                )
                for name, ep in variants:
                    db = os.path.join(d, f"{name}-{i}.db")
                    r = asyncio.run(_run(db, ep, sdk=name == "sdk", noop=name == "events"))
                    ticks, total, committed, exported = r.ticks, r.total, r.committed, r.exported
                    if name in cpu:
                        cpu[name].append(r.cpu * 1e6 / committed)
                    if name in share:
                        share[name].append(100 * r.otel_cpu / (r.cpu - r.otel_cpu))
                    if name == "events":
                        continue
                    if name == "plain":
                        plain.append(committed / total)
                    elif name == "up":
                        if exported < AGENTS * TICKS:
                            raise RuntimeError(f"only {exported} spans exported")
                        up.append(committed / total)
                        up_ticks.append(committed / ticks)
                    elif name == "down":
                        down.append(committed / ticks)
                    else:
                        sdk.append(committed / total)
            with urllib.request.urlopen(f"{endpoint}/count") as r:
                received = int(r.read())
        finally:
            sink.terminate()
            sink.wait()
    base = median(plain)
    note = f"plain {base:,.0f} trans/s; the receiver got {received:,} spans"
    load = os.getloadavg()[0]
    return [
        Figure(GROUP, "1,000 no-op agents x 10 ticks, plain (reference)", base, "trans/s", None),
        Figure(
            GROUP,
            "OTel export cost, endpoint up (ticks + flush to the receiver)",
            100 * (1 - median(up) / base),
            "%",
            10.0,
            note=note,
        ),
        Figure(
            GROUP,
            "OTel CPU share measured in the run (its CPU / the rest's, same run)",
            median(share["up"]),
            "%",
            10.0,
            note=f"load average {load:.1f}; same run: both halves see the load, not equally",
        ),
        Figure(
            GROUP,
            "the same share through the SDK's OTLPSpanExporter (its encoder)",
            median(share["sdk"]),
            "%",
            None,
        ),
        Figure(
            GROUP,
            "OTel cost seen by the ticks alone, endpoint up",
            100 * (1 - median(up_ticks) / base),
            "%",
            None,
        ),
        Figure(
            GROUP,
            "CPU per transition, plain (reference; all threads, robust to other load)",
            median(cpu["plain"]),
            "µs",
            None,
        ),
        Figure(
            GROUP,
            "CPU cost of the event kernel alone (a no-op processor; reference)",
            100 * (median(cpu["events"]) / median(cpu["plain"]) - 1),
            "%",
            None,
        ),
        Figure(
            GROUP,
            "OTel CPU cost per transition across runs (noisy under load; reference)",
            100 * (median(cpu["up"]) / median(cpu["plain"]) - 1),
            "%",
            None,
            note=f"{median(cpu['up']):.1f} µs with OTel",
        ),
        Figure(
            GROUP,
            "the same through the SDK's OTLPSpanExporter (its own encoder)",
            100 * (1 - median(sdk) / base),
            "%",
            None,
        ),
        Figure(
            GROUP,
            "OTel cost, endpoint down (exports fail, dropped and counted)",
            100 * (1 - median(down) / base),
            "%",
            10.0,
        ),
    ]
