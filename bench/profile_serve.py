"""Where the serve bench's kernel loses time to its followers: ``python bench/profile_serve.py
[--workers N] [--rounds R]``.

Serves the app as the serve bench does (``telic serve --stream-workers N``; 0 serves the
streams in-process) and runs R rounds of (the run written flat out alone; the same with the
bench's 100 SSE followers in their own process). Around each write it reads the CPU time of
the server's process (every thread, from ``/proc/self/task``), of the stream workers and of
the followers' process. Prints each round and the median ratio: the CPU the server's process
spent while followed against alone says whether fan-out work is still in the kernel's
process; the throughput ratios show how much the machine's load moves the figure. A profile,
not a figure with a target. Linux only (``/proc``).

``--floor``: the followers read a pre-encoded copy of the stream from a bare asyncio process
(at nice 10, like a stream worker) that does nothing else, started as the write starts: the
least any server could cost the kernel with the followers' own process on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import uvicorn

from groups import serve as bench
from telic.access import TokenStore
from telic.serve import Settings, create_app
from telic.serve.context import Context
from telic.serve.handoff import uvicorn_options

_TICK = os.sysconf("SC_CLK_TCK")


def _cpu(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _own_cpu() -> float:
    return sum(_cpu(task / "stat") for task in Path("/proc/self/task").iterdir())


def _cpu_of(pids: list[int]) -> float:
    return sum(_cpu(Path(f"/proc/{pid}/stat")) for pid in pids)


async def _profile(directory: Path, workers: int, rounds: int, floor: bool) -> None:
    app = create_app(
        str(directory / "ledger.db"),
        settings=Settings(
            spec_dir=directory / "specs", resume_hosted=False, stream_workers=workers
        ),
    )
    port = bench._free_port()  # pyright: ignore[reportPrivateUsage]
    server = uvicorn.Server(
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
    ctx: Context = app.state.telic
    token, _ = TokenStore(ctx.ledger).create("profile", ["read"])
    url = f"http://127.0.0.1:{port}"
    write, followers, result = bench._write, bench._followers, bench._result  # pyright: ignore[reportPrivateUsage]
    ratios: list[float] = []
    try:
        ctx.ledger.create_run("warm")
        await write(ctx, "warm", bench.FLAT_OUT, None)
        for i in range(rounds):
            ctx.ledger.create_run(f"alone{i}")
            ctx.ledger.create_run(f"busy{i}")
            c0 = _own_cpu()
            alone = await write(ctx, f"alone{i}", bench.FLAT_OUT, None)
            own_alone = _own_cpu() - c0
            bare = None
            if floor:
                bare_port = bench._free_port()  # pyright: ignore[reportPrivateUsage]
                bare = await bench.bare_server(directory, ctx, bare_port)
                proc = await followers(
                    f"http://127.0.0.1:{bare_port}", "warm", token, bench.FLAT_OUT
                )
                pids = [bare.pid]
                assert bare.stdin is not None
                bare.stdin.write(b"go\n")
            else:
                proc = await followers(url, f"busy{i}", token, bench.FLAT_OUT)
                pids = [] if ctx.workers is None else ctx.workers.pids
            c0, w0, f0 = _own_cpu(), _cpu_of(pids), _cpu_of([proc.pid])
            busy = await write(ctx, f"busy{i}", bench.FLAT_OUT, None)
            own, wk, fl = _own_cpu() - c0, _cpu_of(pids) - w0, _cpu_of([proc.pid]) - f0
            got = await result(proc)
            if bare is not None:
                assert bare.stdin is not None
                bare.stdin.write(b"end\n")
                await bare.wait()
            ratios.append(busy / alone)
            print(
                f"round {i}: {busy:,.0f}/{alone:,.0f} transitions/s = {busy / alone:.2f}x; "
                f"CPU while writing: server process {own:.2f} s followed vs {own_alone:.2f} s "
                f"alone, stream workers (or the bare server) {wk:.2f} s, followers {fl:.2f} s; lost {got['lost']}",
                flush=True,
            )
    finally:
        server.should_exit = True
        await serving
    what = "floor (a bare streaming process)" if floor else f"stream workers {workers}"
    print(f"{what}: median ratio {statistics.median(ratios):.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, default=1, help="stream workers (0: in-process)")
    ap.add_argument("--rounds", type=int, default=7, help="rounds of (alone, followed)")
    ap.add_argument("--floor", action="store_true", help="follow a bare streaming process")
    ap.add_argument("--bare", nargs=2, metavar=("BLOB", "PORT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare:
        asyncio.run(bench.bare(Path(args.bare[0]).read_bytes(), int(args.bare[1])))
        return
    with tempfile.TemporaryDirectory(prefix="telic-profile-serve-") as d:
        asyncio.run(_profile(Path(d), args.workers, args.rounds, args.floor))


if __name__ == "__main__":
    main()
