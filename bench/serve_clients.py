"""The SSE followers of ``bench/groups/serve.py``, in a process of their own.

``python bench/serve_clients.py URL RUN TOKEN CLIENTS TOTAL``: opens CLIENTS streams of
``/runs/RUN/events?from=1`` over plain asyncio sockets (the lightest client there is), prints
``ready`` once every stream is open, reads until each has seen seq TOTAL (or 120 s pass), then
prints one JSON line: events received, lost, duplicated, gaps within a connection, drops (a
dropped client reconnects with ``Last-Event-ID``, so a drop loses nothing), the latencies
(receipt time minus the transition's timestamp, which the writer takes just before it
commits), and this process's CPU time. Frames are found with a regular expression over
large reads, so the clients cost little CPU and measure the server, not themselves.
"""

from __future__ import annotations

import asyncio
import json
import re
import resource
import sys
import time
from urllib.parse import urlsplit


async def follow_safely(
    host: str,
    port: int,
    path: str,
    token: str,
    total: int,
    ready: asyncio.Event,
    out: dict[str, object],
) -> None:
    try:
        await follow(host, port, path, token, total, ready, out)
    except Exception as exc:  # reported, not hidden: the bench refuses the figure
        out["error"] = repr(exc)
        ready.set()


_ID = re.compile(rb"^id: (\d+)\nevent: [^\n]*\ndata: \{.*?\"ts_us\":(\d+)", re.M)
_DROPPED = b"event: stream.dropped"


async def follow(
    host: str,
    port: int,
    path: str,
    token: str,
    total: int,
    ready: asyncio.Event,
    out: dict[str, object],
) -> None:
    """Read the stream in large pieces; every event's seq is checked (a gap or a repeat
    within a connection is counted), its latency taken from its ``ts_us``. A client dropped
    by the server reconnects with ``Last-Event-ID``, as a browser does."""
    seen: list[int] = []
    lat: list[float] = []
    out["seen"] = seen
    out["lat"] = lat
    out["drops"] = 0
    out["gaps"] = 0
    last: int | None = None
    while last is None or last < total:
        reader, writer = await asyncio.open_connection(host, port)
        resume = "" if last is None else f"Last-Event-ID: {last}\r\n"
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"Accept: text/event-stream\r\n{resume}\r\n".encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            out["error"] = head.decode(errors="replace").split("\r\n", 1)[0]
            ready.set()
            writer.close()
            return
        ready.set()
        buf = b""
        dropped = False
        while last is None or last < total:
            more = await reader.read(1 << 20)
            if not more:
                break
            now = time.time()
            buf += more
            cut = buf.rfind(b"\n\n")
            if cut < 0:
                continue
            done, buf = buf[: cut + 2], buf[cut + 2 :]
            for m in _ID.finditer(done):
                seq = int(m.group(1))
                if last is not None and seq != last + 1:
                    out["gaps"] = int(out["gaps"]) + 1  # type: ignore[call-overload]
                seen.append(seq)
                lat.append(now - int(m.group(2)) / 1e6)
                last = seq
            if _DROPPED in done:
                dropped = True
                break
        writer.close()
        if not dropped:
            break
        out["drops"] = int(out["drops"]) + 1  # type: ignore[call-overload]


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main(url: str, run: str, token: str, clients: int, total: int) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    results: list[dict[str, object]] = [{} for _ in range(clients)]
    readies = [asyncio.Event() for _ in range(clients)]
    tasks = [
        asyncio.create_task(
            follow_safely(
                host, port, f"/runs/{run}/events?from=1", token, total, readies[i], results[i]
            )
        )
        for i in range(clients)
    ]
    await asyncio.gather(*(r.wait() for r in readies))
    print("ready", flush=True)
    await asyncio.wait(tasks, timeout=120)
    lost = dup = received = gaps = drops = 0
    lat: list[float] = []
    for r in results:
        seen: list[int] = r.get("seen", [])  # type: ignore[assignment]
        received += len(seen)
        dup += len(seen) - len(set(seen))
        lost += total - len(set(seen) & set(range(1, total + 1)))
        gaps += int(r.get("gaps", 0))  # type: ignore[call-overload]
        drops += int(r.get("drops", 0))  # type: ignore[call-overload]
        lat += r.get("lat", [])  # type: ignore[arg-type]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "received": received,
                "lost": lost,
                "duplicated": dup,
                "gaps": gaps,
                "drops": drops,
                "deliveries": len(lat),
                "p50_ms": _pct(lat, 50) * 1000,
                "p99_ms": _pct(lat, 99) * 1000,
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "errors": sorted({str(r["error"]) for r in results if "error" in r}),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    u, r, t, c, n = sys.argv[1:6]
    asyncio.run(main(u, r, t, int(c), int(n)))
