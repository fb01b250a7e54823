"""A writer for the crash tests: appends groups to a SQLite ledger and acknowledges each.

``python _crash_writer.py PATH loop SEED``: append groups forever, printing ``ACK <group>
<last seq>`` (flushed) after each append returns; the test SIGKILLs it at a random point.
``python _crash_writer.py PATH groups N SEED``: append N groups, then SIGKILL itself, so the
WAL is left as a crash leaves it.

Group ``g`` holds ``n`` transitions, all with tick ``g`` and payload ``{"g", "i", "n"}``, so a
reader can tell whether every group is whole.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sys

from telic.canonical import encode
from telic.errors import RunExists
from telic.ledger import SQLiteLedger
from telic.transition import Draft


def group(g: int, n: int) -> list[Draft]:
    return [
        Draft(
            "observation.recorded",
            encode({"agent": "w", "source": "crash", "content": {"g": g, "i": i, "n": n}}),
            ts=1_000_000 + g,
            tick=g,
            agent="w",
        )
        for i in range(n)
    ]


def main() -> None:
    path, mode = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if mode == "groups" else -1
    rng = random.Random(int(sys.argv[-1]))
    ledger = SQLiteLedger(path, snapshot_every=50)  # synchronous=FULL, the default
    with contextlib.suppress(RunExists):
        ledger.create_run("r")
    print("READY", flush=True)
    done = 0
    while count < 0 or done < count:
        info = ledger.run("r")
        g = _last_group(ledger) + 1
        n = rng.randint(1, 40)
        written = ledger.append("r", group(g, n), expected=info.head + 1)
        print(f"ACK {g} {written[-1].seq}", flush=True)
        done += 1
    os.kill(os.getpid(), signal.SIGKILL)


def _last_group(ledger: SQLiteLedger) -> int:
    head = ledger.run("r").head
    return 0 if head == 0 else ledger.get("r", head).tick


if __name__ == "__main__":
    main()
