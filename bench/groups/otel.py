"""OpenTelemetry export figures (issue 14): what exporting spans costs a run.

The workload is the kernel group's swarm figure: 1,000 no-op agents for 10 ticks on a durable
SQLite ledger, one group commit per tick. It runs side by side in one process, interleaved
repeat by repeat, in these ways:

- ``plain``: the kernel alone (no event kernel, no processor);
- ``events``: the kernel publishing to an event kernel with a no-op processor (what the
  processor seam itself costs);
- ``otel``: the kernel publishing to an event kernel with an ``OtelExportProcess`` (what
  ``telic run/serve --otlp-endpoint`` use): spans are built, encoded and posted by a child
  process that reads the ledger, to a real receiver in a third process on loopback;
- ``otel, endpoint down``: the same, with the exporter pointed at a closed loopback port;
- ``thread``: the in-process ``OtelProcessor`` (spans built and encoded by a thread of the
  kernel's process, telic's encoder), for comparison;
- ``sdk``: as ``thread`` but through the SDK's ``OTLPSpanExporter`` (``ReadableSpan`` objects
  encoded by the SDK), to show what telic's own encoder saves.

A run's throughput is committed transitions over the time from the first tick to the end of
the last one; for the exporting variants the time also includes ``force_flush`` (every span
built, encoded and accepted by the receiver), so the figure is the whole cost of exporting,
including the time the exporter process needs to catch up, and the CPU it takes from the
kernel on a machine with two cores. The cost is ``1 - otel/plain`` of the medians. Wall-clock
figures are only as good as the machine is quiet. The second figure to read is the CPU share
measured inside one run: the CPU of the OTel work done in the kernel's process (the event
kernel's ``publish`` calls with the processor's ``on_event``, timed by ``time.thread_time``,
plus ``OtelStats.cpu_s``: the processor's own thread) over the CPU of everything else the
same process did in the same run; both halves see the same load. The exporter process's CPU
is reported next to it, as a share of the same run's CPU: it is spent, on the other core.
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
from telic.otel import OtelExportProcess, OtelProcessor, otlp_exporter
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
    child_cpu: float
    """CPU seconds of the exporter process (``otel`` and ``down`` only), in the same span."""


Variant = str
"""plain, events, otel, down, thread or sdk (see the module docstring)."""


def _processor(variant: Variant, url: str, endpoint: str) -> OtelExportProcess | OtelProcessor:
    if variant in ("otel", "down"):
        return OtelExportProcess(url, endpoint, timeout_s=2.0)
    if variant == "sdk":
        return OtelProcessor(otlp_exporter(endpoint, timeout_s=2.0))
    return OtelProcessor.for_endpoint(endpoint, timeout_s=2.0)


async def _run(url: str, variant: Variant, endpoint: str) -> _Result:
    ledger = open_ledger(url)
    processor = None
    events = None
    publish: Callable[[Sequence[Transition]], None] | None = None
    published = [0.0]
    if variant == "events":
        events = EventKernel(ledger, processors=[NoopProcessor()])
        publish = events.publish
    elif variant != "plain":
        processor = _processor(variant, url, endpoint)
        events = EventKernel(ledger, processors=[processor])
        to_events = events.publish

        def timed_publish(transitions: Sequence[Transition]) -> None:
            c = time.thread_time()
            to_events(transitions)
            published[0] += time.thread_time() - c

        publish = timed_publish

    run = await Kernel(ledger, clock=SystemClock(), publish=publish).boot(_config())
    head0 = ledger.run(run.id).head
    if processor is not None:
        processor.force_flush()  # the boot's records: not part of the ticks measured
    published[0] = 0.0
    otel0 = processor.stats.cpu_s if processor is not None else 0.0
    child0 = processor.child_cpu_s if isinstance(processor, OtelExportProcess) else 0.0
    t0 = time.perf_counter()
    c0 = time.process_time()
    try:
        for _ in range(TICKS):
            await run.step()
        ticks = time.perf_counter() - t0
        exported = 0
        otel = child = 0.0
        if processor is not None:
            stats = processor.force_flush()
            exported = stats.exported
            otel = stats.cpu_s - otel0 + published[0]
            if isinstance(processor, OtelExportProcess):
                child = processor.child_cpu_s - child0
        total = time.perf_counter() - t0
        cpu = time.process_time() - c0
    finally:
        await run.close()
        if events is not None:
            await events.aclose()
    committed = ledger.run(run.id).head - head0
    ledger.close()
    return _Result(ticks, total, committed, exported, cpu, otel, child)


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


_VARIANTS: tuple[Variant, ...] = ("plain", "events", "otel", "down", "thread", "sdk")


def collect(repeats: int) -> list[Figure]:
    rate: dict[Variant, list[float]] = {v: [] for v in _VARIANTS}
    """Transitions a second, ticks and flush (ticks only for ``down``)."""
    ticks_rate: dict[Variant, list[float]] = {v: [] for v in _VARIANTS}
    cpu: dict[Variant, list[float]] = {v: [] for v in _VARIANTS}
    """CPU µs per transition of the kernel's process."""
    share: dict[Variant, list[float]] = {v: [] for v in _VARIANTS}
    child_share: list[float] = []
    child_us: list[float] = []
    both_us: list[float] = []
    """CPU µs per transition of the kernel's process and the exporter process together."""
    with tempfile.TemporaryDirectory() as d:
        sink, endpoint = _start_sink(d)
        dead = f"http://127.0.0.1:{_closed_port()}"
        try:
            for i in range(max(1, repeats)):
                for name in _VARIANTS:
                    db = os.path.join(d, f"{name}-{i}.db")
                    r = asyncio.run(_run(db, name, dead if name == "down" else endpoint))
                    if name in ("otel", "thread", "sdk") and r.exported < AGENTS * TICKS:
                        raise RuntimeError(f"{name}: only {r.exported} spans exported")
                    rate[name].append(r.committed / (r.ticks if name == "down" else r.total))
                    ticks_rate[name].append(r.committed / r.ticks)
                    cpu[name].append(r.cpu * 1e6 / r.committed)
                    share[name].append(100 * r.otel_cpu / (r.cpu - r.otel_cpu))
                    if name == "otel":
                        child_share.append(100 * r.child_cpu / r.cpu)
                        child_us.append(r.child_cpu * 1e6 / r.committed)
                        both_us.append((r.cpu + r.child_cpu) * 1e6 / r.committed)
            with urllib.request.urlopen(f"{endpoint}/count") as r:
                received = int(r.read())
        finally:
            sink.terminate()
            sink.wait()
    base = median(rate["plain"])

    def cost(variant: Variant, rates: dict[Variant, list[float]] = rate) -> float:
        return 100 * (1 - median(rates[variant]) / base)

    load = os.getloadavg()[0]
    note = f"plain {base:,.0f} trans/s; the receiver got {received:,} spans; load {load:.1f}"
    return [
        Figure(GROUP, "1,000 no-op agents x 10 ticks, plain (reference)", base, "trans/s", None),
        Figure(
            GROUP,
            "OTel export cost, endpoint up (ticks + flush to the receiver; exporter process)",
            cost("otel"),
            "%",
            10.0,
            note=note,
        ),
        Figure(
            GROUP,
            "OTel CPU share in the kernel's process (its CPU / the rest's, same run)",
            median(share["otel"]),
            "%",
            10.0,
            note=f"load average {load:.1f}; same run: both halves see the load",
        ),
        Figure(
            GROUP,
            "the exporter process's CPU (% of the kernel process's CPU, same run; other core)",
            median(child_share),
            "%",
            None,
            note=f"{median(child_us):.1f} µs a transition: reading, folding, encoding, sending",
        ),
        Figure(
            GROUP,
            "CPU of both processes per transition, over plain's (all the CPU exporting costs)",
            100 * (median(both_us) / median(cpu["plain"]) - 1),
            "%",
            None,
            note=f"{median(both_us):.1f} µs against {median(cpu['plain']):.1f} µs plain",
        ),
        Figure(
            GROUP,
            "OTel cost, endpoint down (exports fail, dropped and counted; ticks)",
            cost("down"),
            "%",
            10.0,
        ),
        Figure(
            GROUP,
            "OTel cost seen by the ticks alone, endpoint up",
            cost("otel", ticks_rate),
            "%",
            None,
        ),
        Figure(
            GROUP,
            "in-process OtelProcessor (a thread): export cost, ticks + flush (reference)",
            cost("thread"),
            "%",
            None,
        ),
        Figure(
            GROUP,
            "in-process OtelProcessor: its CPU share in the run (reference)",
            median(share["thread"]),
            "%",
            None,
        ),
        Figure(
            GROUP,
            "in-process through the SDK's OTLPSpanExporter: CPU share (reference)",
            median(share["sdk"]),
            "%",
            None,
        ),
        Figure(
            GROUP,
            "the same: export cost, ticks + flush (reference)",
            cost("sdk"),
            "%",
            None,
        ),
        Figure(
            GROUP,
            "CPU per transition, plain (reference; all threads)",
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
    ]
