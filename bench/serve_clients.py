"""The SSE followers of ``bench/groups/serve.py``, in a process of their own.

``python bench/serve_clients.py URL RUN TOKEN CLIENTS TOTAL``: opens CLIENTS streams of
``/runs/RUN/events?from=1`` over plain asyncio sockets (the lightest client there is), prints
``ready`` once every stream is open, reads until each has seen seq TOTAL (or 120 s pass), then
prints one JSON line: events received, lost, duplicated, the latencies (receipt time minus the
transition's timestamp, which the writer takes just before it commits), and this process's
CPU time.
"""

from __future__ import annotations

import asyncio
import json
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


async def follow(
    host: str,
    port: int,
    path: str,
    token: str,
    total: int,
    ready: asyncio.Event,
    out: dict[str, object],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    seen: list[int] = []
    lat: list[float] = []
    out["seen"] = seen
    out["lat"] = lat
    opened = False
    status = await reader.readline()
    if b" 200 " not in status:
        out["error"] = status.decode(errors="replace").strip()
        ready.set()
        writer.close()
        return
    while True:
        line = await reader.readline()
        if not line:
            break
        if not opened and line.startswith(b"retry:"):
            opened = True
            ready.set()
        if line.startswith(b"data: {"):
            now = time.time()
            data = json.loads(line[6:])
            if data.get("run") is None:
                continue
            seen.append(data["seq"])
            lat.append(now - data["ts_us"] / 1e6)
            if data["seq"] >= total:
                break
    writer.close()


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
    lost = dup = received = 0
    lat: list[float] = []
    for r in results:
        seen: list[int] = r.get("seen", [])  # type: ignore[assignment]
        received += len(seen)
        dup += len(seen) - len(set(seen))
        lost += total - len(set(seen) & set(range(1, total + 1)))
        lat += r.get("lat", [])  # type: ignore[arg-type]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "received": received,
                "lost": lost,
                "duplicated": dup,
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
