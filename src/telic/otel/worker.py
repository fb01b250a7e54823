"""The exporter process: spans built, encoded and sent by a child process that reads the ledger.

:class:`OtelExportProcess` is an event-kernel processor that does almost nothing in the
kernel's process: ``on_event`` notes the newest sequence number of the event's run (a dict
store). Every ``interval_s``, a thread it owns hands those heads (one pair of integers per run,
coalesced, so the hand-off is bounded by the number of runs, not of transitions) to a child
process (``python -m telic.otel``) over a pipe. The child reads the transitions from the
ledger itself (the records are already there, committed), folds them with the same
:class:`~telic.otel.spans.SpanBuilder` as the in-process :class:`~telic.otel.OtelProcessor`
and ``telic export-otel`` (so the trace and span ids are the same), encodes and exports them,
and answers with its counts.

- Never blocking the kernel: the kernel's thread only writes a dict; the pipe is written and
  read by the processor's thread. A slow or dead endpoint slows only the child.
- Bounded: the child reads at most ``max_lag`` transitions behind a run's head; older ones are
  skipped and counted in :attr:`~telic.otel.OtelStats.dropped` (a span they opened is lost).
- Supervised: a child that dies is started again (at most ``max_restarts`` times) and goes on
  from the last transition its predecessor had finished; spans open at the crash are lost
  (their transitions count as dropped). After that, exporting stops and what follows is
  dropped and counted; the run goes on.
- Yielding: the child lowers its priority by ``niceness`` (5), so that on a busy machine the
  kernel gets the CPU first and the export lags (within ``max_lag``) rather than the run.
- Shut down cleanly: ``shutdown`` stops the thread, has the child export what is left and end
  the open spans, waits for it to exit (killing it after a grace period).

It needs a ledger another process can open (SQLite or PostgreSQL): for ``memory://`` use the
in-process :class:`~telic.otel.OtelProcessor`; :func:`live_processor` picks one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Any

import orjson

from telic.errors import ConfigError, TelicError
from telic.events.event import Event
from telic.ledger.base import Ledger
from telic.otel.processor import (
    OtelProcessor,
    OtelStats,
    SpanSink,
    endpoint_sink,
    send_batches,
)
from telic.otel.spans import SpanBuilder, SpanData

__all__ = ["OtelExportProcess", "live_processor"]

log = logging.getLogger("telic.otel")

_GRACE_S = 10.0
"""How long an answer may take beyond the exporter's timeouts."""
_STARTUP_S = 120.0
"""How long a child may take to start (import, open its sink) before it is given up on."""


def shareable(ledger_url: str) -> bool:
    """Whether another process can open the ledger at ``ledger_url`` (not ``memory://``)."""
    return not ledger_url.lower().startswith("memory:")


def live_processor(
    endpoint: str | None,
    ledger_url: str,
    *,
    capture_content: bool | None = None,
) -> OtelExportProcess | OtelProcessor:
    """The processor for live export of runs in the ledger at ``ledger_url``: the exporter
    process when another process can read that ledger, the in-process one otherwise."""
    if shareable(ledger_url):
        return OtelExportProcess(ledger_url, endpoint, capture_content=capture_content)
    return OtelProcessor.for_endpoint(endpoint, capture_content=capture_content)


class _ChildGone(Exception):
    """The child process exited, closed its pipe or did not answer in time."""


class OtelExportProcess:
    """An :class:`~telic.events.EventProcessor` whose spans are made in a child process.

    ``ledger_url`` is the ledger the kernel appends to (the child opens it read-only);
    ``endpoint``, ``capture_content`` and ``timeout_s`` are as for
    :meth:`OtelProcessor.for_endpoint` (the standard ``OTEL_EXPORTER_OTLP_*`` variables apply
    in the child too). See the module docstring for the guarantees.
    """

    def __init__(
        self,
        ledger_url: str,
        endpoint: str | None = None,
        *,
        capture_content: bool | None = None,
        timeout_s: float | None = None,
        batch_size: int = 1024,
        interval_s: float = 0.2,
        max_lag: int = 200_000,
        max_restarts: int = 3,
        niceness: int = 5,
    ) -> None:
        if not shareable(ledger_url):
            raise ConfigError(
                f"the OTel exporter process cannot read {ledger_url!r}: "
                "use OtelProcessor for an in-memory ledger"
            )
        if (
            batch_size < 1
            or max_lag < 1
            or max_restarts < 0
            or not 0 <= niceness <= 19
            or not interval_s > 0
        ):
            raise ConfigError(
                "OtelExportProcess: batch_size, max_lag and interval_s must be > 0, "
                "max_restarts >= 0, niceness in 0..19"
            )
        endpoint_sink(endpoint, timeout_s)  # a bad endpoint fails here, not in the child
        self._config = orjson.dumps(
            {
                "ledger": ledger_url,
                "endpoint": endpoint,
                "capture_content": capture_content,
                "timeout_s": timeout_s,
                "batch_size": batch_size,
                "max_lag": max_lag,
                "niceness": niceness,
            }
        )
        self._timeout_s = timeout_s
        self._interval_s = interval_s
        self._max_restarts = max_restarts
        self._heads: dict[str, int] = {}
        """By run: the newest seq published (written by the kernel's thread only)."""
        self._firsts: dict[str, int] = {}
        """By run: the first seq published (where the export of the run starts)."""
        self._sent: dict[str, int] = {}
        """By run: the head the child has finished (acknowledged)."""
        self._lock = threading.Lock()  # one conversation with the child at a time
        self._wake = threading.Event()
        self._stopping = False
        self._closed = False
        self._child: subprocess.Popen[bytes] | None = None
        self._lines: _Lines | None = None
        """The child's answers, once it said it started (its first line)."""
        self._restarts = 0
        self._given_up = False
        self._totals = {"exported": 0, "failed": 0, "dropped": 0}
        """Counts of the children that ended (a running child reports its own)."""
        self._last: dict[str, Any] = {"exported": 0, "failed": 0, "dropped": 0, "cpu_s": 0.0}
        """The running child's last answer."""
        self._child_cpu_s = 0.0
        self._cpu_s = 0.0
        self._spawn()
        self._thread = threading.Thread(target=self._run, name="telic-otel-feed", daemon=True)
        self._thread.start()

    # -- what the kernel's process sees ------------------------------------------------------

    @property
    def stats(self) -> OtelStats:
        """Counts so far. ``cpu_s`` is what this process spent (the processor's thread);
        :attr:`child_cpu_s` is what the exporter process spent."""
        last, totals = self._last, self._totals
        heads = dict(self._heads)  # the kernel's thread may be adding a run
        behind = sum(h - self._sent.get(r, self._firsts[r] - 1) for r, h in heads.items())
        return OtelStats(
            max(0, behind),
            totals["dropped"] + int(last["dropped"]),
            totals["exported"] + int(last["exported"]),
            totals["failed"] + int(last["failed"]),
            self._cpu_s,
        )

    @property
    def child_cpu_s(self) -> float:
        """CPU seconds of the exporter process (every child so far)."""
        return self._child_cpu_s + float(self._last["cpu_s"])

    @property
    def restarts(self) -> int:
        """How many times the exporter process was started again after dying."""
        return self._restarts

    @property
    def pid(self) -> int | None:
        """The exporter process's id, while it runs."""
        return self._child.pid if self._child is not None else None

    def on_event(self, event: Event) -> None:
        t = event.transition
        heads = self._heads
        if t.run not in heads:
            self._firsts[t.run] = t.seq
        heads[t.run] = t.seq

    def force_flush(self) -> OtelStats:
        """Have the child export every transition published so far; return the stats."""
        with self._lock:
            self._step()
        return self.stats

    def shutdown(self) -> None:
        """Stop the thread, have the child export what is left and end open spans, wait for
        it to exit."""
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        self._wake.set()
        self._thread.join()
        with self._lock:
            c0 = time.thread_time()
            self._step()
            child = self._child
            if child is not None:
                with contextlib.suppress(_ChildGone):  # it is reaped (killed) either way
                    self._ask({"op": "close"})
                self._reap(child)
            self._cpu_s += time.thread_time() - c0

    # -- the processor's thread --------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            if self._stopping:
                break
            with self._lock:
                c0 = time.thread_time()
                self._step()
                self._cpu_s += time.thread_time() - c0

    def _step(self) -> None:
        """Hand the heads that moved to the child and wait for it to have exported them."""
        heads = dict(self._heads)  # one C-level copy: the kernel's thread may be writing
        moved = {
            run: [self._sent.get(run, self._firsts[run] - 1) + 1, head]
            for run, head in heads.items()
            if head > self._sent.get(run, 0)
        }
        if not moved:
            return
        if self._given_up:
            self._totals["dropped"] += sum(h - s + 1 for s, h in moved.values())
            self._sent.update({run: h for run, (_, h) in moved.items()})
            return
        try:
            self._ask({"op": "step", "runs": moved})
        except _ChildGone as exc:
            self._lost(str(exc), moved)
            return
        self._sent.update({run: h for run, (_, h) in moved.items()})

    def _ask(self, message: dict[str, Any]) -> None:
        """Send one request and wait for the child's answer (its counts)."""
        child = self._child
        if child is None or child.stdin is None or child.stdout is None:
            raise _ChildGone("no exporter process")
        try:
            child.stdin.write(orjson.dumps(message) + b"\n")
            child.stdin.flush()
        except OSError as exc:
            raise _ChildGone(f"writing to it failed ({exc})") from None
        lines = self._lines
        if lines is None:
            lines = self._lines = _Lines(child.stdout)
            lines.read(_STARTUP_S)  # its "ready": imports can be slow on a busy machine
        line = lines.read(_answer_limit(self._timeout_s))
        try:
            answer = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise _ChildGone(f"it answered {line[:80]!r}") from None
        self._last = answer

    def _lost(self, why: str, moved: dict[str, list[int]]) -> None:
        """The child died or hung: count what it had not finished, start another."""
        if self._child is not None:
            self._reap(self._child, kill=True)
        self._totals["dropped"] += sum(h - s + 1 for s, h in moved.values())
        self._sent.update({run: h for run, (_, h) in moved.items()})
        if self._restarts >= self._max_restarts:
            log.error("the OTel exporter process failed (%s); spans are dropped from now", why)
            self._given_up = True
            return
        self._restarts += 1
        log.warning("the OTel exporter process failed (%s); starting it again", why)
        self._spawn()

    # -- the child process -------------------------------------------------------------------

    def _spawn(self) -> None:
        self._lines = None
        self._child = subprocess.Popen(
            [sys.executable, "-m", "telic.otel", self._config.decode()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def _reap(self, child: subprocess.Popen[bytes], *, kill: bool = False) -> None:
        """Fold the child's counts into the totals, and wait for it to exit."""
        last = self._last
        for key in self._totals:
            self._totals[key] += int(last[key])
        self._child_cpu_s += float(last["cpu_s"])
        self._last = {"exported": 0, "failed": 0, "dropped": 0, "cpu_s": 0.0}
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):  # a dead child's pipe: nothing to flush to
                    stream.close()
        if kill:
            child.kill()
        try:
            child.wait(_answer_limit(self._timeout_s))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        self._child = None


def _answer_limit(timeout_s: float | None) -> float:
    """How long an answer may take: a step may export several batches, each up to the
    exporter's timeout, before the child answers."""
    return 4 * (timeout_s if timeout_s is not None else 10.0) + _GRACE_S


class _Lines:
    """Lines read from a pipe with a time limit (``select`` on the file descriptor, so
    nothing may sit in a Python buffer that ``select`` cannot see)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.fd = stream.fileno()
        self.pending = b""

    def read(self, limit_s: float) -> bytes:
        deadline = time.monotonic() + limit_s
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(0.0, left))
            if not ready:
                raise _ChildGone(f"no answer within {limit_s:g} s")
            chunk = os.read(self.fd, 65536)
            if not chunk:
                raise _ChildGone("it exited")
            self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\n")
        return line


# -- the child's side ------------------------------------------------------------------------


class _Exporter:
    """What the child holds: the ledger, the builder, the sink, and its counts."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.ledger_url: str = config["ledger"]
        self._ledger: Ledger | None = None
        self.sink: SpanSink = endpoint_sink(config["endpoint"], config["timeout_s"])
        capture = config["capture_content"]
        if capture is None:
            from telic.otel.endpoint import capture_content_from_env

            capture = capture_content_from_env()
        self.builder = SpanBuilder(capture_content=bool(capture))
        self.batch_size: int = config["batch_size"]
        self.max_lag: int = config["max_lag"]
        self.exported = 0
        self.failed = 0
        self.dropped = 0
        self.closing = False

    @property
    def ledger(self) -> Ledger:
        """The ledger, opened on first use: the kernel may create it after this starts."""
        if self._ledger is None:
            from telic.ledger import open_ledger

            self._ledger = open_ledger(self.ledger_url, readonly=True)
        return self._ledger

    def step(self, runs: dict[str, list[int]]) -> None:
        for run, (start, head) in runs.items():
            if head - start + 1 > self.max_lag:
                self.dropped += head - self.max_lag + 1 - start
                start = head - self.max_lag + 1
            try:
                spans = self.builder.feed(self.ledger.read(run, start, head))
            except TelicError as exc:  # the run is gone (or damaged): skip it, counted
                log.warning("cannot read %s %d..%d for OTel export: %s", run, start, head, exc)
                self.dropped += head - start + 1
                continue
            self.export(spans)

    def close(self) -> None:
        self.closing = True
        self.export(self.builder.close())
        self.sink.close()
        if self._ledger is not None:
            self._ledger.close()

    def export(self, spans: list[SpanData]) -> None:
        exported, failed = send_batches(
            self.sink, spans, self.batch_size, closing=self.closing, failing=self.failed > 0
        )
        self.exported += exported
        self.failed += failed

    def counts(self) -> bytes:
        return orjson.dumps(
            {
                "exported": self.exported,
                "failed": self.failed,
                "dropped": self.dropped,
                "cpu_s": time.process_time(),
            }
        )


def main(argv: list[str]) -> int:
    """The child: answer each request line on stdin with one line of counts on stdout."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # Ctrl-C in a terminal reaches the whole process group: the parent decides when this ends
    # (a close request, or its end of the pipe closing), so the export is finished, not cut.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    config = orjson.loads(argv[0])
    if config.get("niceness") and hasattr(os, "nice"):
        os.nice(int(config["niceness"]))  # telemetry takes the CPU the kernel leaves
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # nothing a library prints may reach the protocol
    exporter = _Exporter(config)
    answers.write(b'{"ready":true}\n')
    answers.flush()
    for line in sys.stdin.buffer:
        request = orjson.loads(line)
        if request["op"] == "step":
            exporter.step(request["runs"])
        else:
            exporter.close()
        answers.write(exporter.counts() + b"\n")
        answers.flush()
        if request["op"] == "close":
            return 0
    exporter.close()  # the parent went away: export what is left
    return 0
