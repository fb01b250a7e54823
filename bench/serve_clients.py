"""The SSE followers of ``bench/groups/serve.py``, in a process of their own.

``python bench/serve_clients.py URL RUN TOKEN CLIENTS TOTAL``: opens CLIENTS streams of
``/runs/RUN/events?from=1`` over plain asyncio sockets (the lightest client there is), prints
``ready`` once every stream is open, reads until each has seen seq TOTAL (or 120 s pass), then
prints one JSON line: events received, lost, duplicated, gaps within a connection, drops (a
dropped client reconnects with ``Last-Event-ID``, so a drop loses nothing), the latencies
(receipt time minus the transition's timestamp, which the writer takes just before it
commits; per read, the oldest event's), and this process's CPU time. Frames are found with a
regular expression over large reads, so the clients cost little CPU and measure the server,
not themselves.
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


_ID = re.compile(rb"^id: (\d+)$", re.M)
_TS = re.compile(rb'"ts_us":(\d+)')
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
    """Read the stream in large pieces. Every event's seq is checked against the one before
    it (a gap or a repeat within a connection is counted); the latency of each read is that of
    the oldest event in it (the first: the worst of the read). A client dropped by the server
    reconnects with ``Last-Event-ID``, as a browser does."""
    lat: list[float] = []
    out["lat"] = lat
    count = gaps = drops = 0
    last = 0
    while last < total:
        reader, writer = await asyncio.open_connection(host, port)
        resume = "" if last == 0 else f"Last-Event-ID: {last}\r\n"
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
        while last < total:
            more = await reader.read(1 << 20)
            if not more:
                break
            now = time.time()
            buf += more
            cut = buf.rfind(b"\n\n")
            if cut < 0:
                continue
            done, buf = buf[: cut + 2], buf[cut + 2 :]
            ids = _ID.findall(done)
            if ids:
                first = int(ids[0])
                if first != last + 1 or int(ids[-1]) != first + len(ids) - 1:
                    seqs = [int(i) for i in ids]  # the slow path names what went wrong
                    expect = last + 1
                    for seq in seqs:
                        if seq != expect:
                            gaps += 1
                        expect = seq + 1
                count += len(ids)
                last = int(ids[-1])
                ts = _TS.search(done)
                if ts is not None:
                    lat.append(now - int(ts.group(1)) / 1e6)
            if _DROPPED in done:
                dropped = True
                break
        writer.close()
        if not dropped:
            break
        drops += 1
    out["count"] = count
    out["last"] = last
    out["gaps"] = gaps
    out["drops"] = drops


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
        count = int(r.get("count", 0))  # type: ignore[call-overload]
        received += count
        gaps += int(r.get("gaps", 0))  # type: ignore[call-overload]
        drops += int(r.get("drops", 0))  # type: ignore[call-overload]
        # Within a connection every seq follows the one before (else a gap is counted), and a
        # reconnect resumes after the last seen: so the count says what was lost or repeated.
        lost += max(0, total - count)
        dup += max(0, count - total)
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
                "deliveries": received,
                "reads": len(lat),
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
