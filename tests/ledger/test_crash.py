"""Crash safety: SIGKILL a writer at random points; nothing acknowledged is lost, no group is
torn, and the chain verifies. A WAL cut mid-frame (a torn final write) is repaired on open."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from telic.ledger import SQLiteLedger

from ._crash_writer import group

WRITER = Path(__file__).with_name("_crash_writer.py")
KILLS = 30


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WRITER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _check(path: Path, acked: dict[int, int]) -> int:
    """Reopen the ledger and check it against what the writers acknowledged; the head."""
    with SQLiteLedger(path) as ledger:
        head = ledger.run("r").head
        report = ledger.verify("r")
        assert report.ok, report
        assert report.checked == head
        transitions = list(ledger.read("r"))
    assert [t.seq for t in transitions] == list(range(1, head + 1))
    sizes: Counter[int] = Counter()
    declared: dict[int, int] = {}
    last_seq: dict[int, int] = {}
    for t in transitions:
        content = t.data["content"]
        assert content["g"] == t.tick
        assert content["i"] == sizes[t.tick]  # in order, none missing before it
        sizes[t.tick] += 1
        declared[t.tick] = content["n"]
        last_seq[t.tick] = t.seq
    assert sizes == declared, "a group was written in part"
    assert list(sizes) == list(range(1, len(sizes) + 1)), "groups are not consecutive"
    for g, seq in acked.items():
        assert last_seq.get(g) == seq, f"acknowledged group {g} (up to seq {seq}) is missing"
    return head


@pytest.mark.slow
def test_sigkill_at_random_points_loses_nothing_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    rng = random.Random(20261122)
    acked: dict[int, int] = {}
    heads: list[int] = []
    for kill in range(KILLS):
        proc = _spawn(str(path), "loop", str(kill))
        assert proc.stdout is not None
        lines: list[str] = []

        def reader(out: object = proc.stdout, into: list[str] = lines) -> None:
            for line in out:  # type: ignore[attr-defined]
                into.append(line)

        thread = threading.Thread(target=reader)
        thread.start()
        if kill % 5 == 4:
            time.sleep(rng.uniform(0.0, 0.4))  # sometimes while it opens or creates
        else:
            while not any(x.startswith("ACK") for x in lines) and proc.poll() is None:
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 0.15))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        thread.join()
        proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
        if proc.stderr is not None:
            proc.stderr.close()
        for line in lines:
            if line.startswith("ACK"):
                _, g, seq = line.split()
                acked[int(g)] = int(seq)
        heads.append(_check(path, acked))
    assert heads == sorted(heads)
    assert len(acked) >= KILLS - KILLS // 5  # most kills landed after appends had begun


def test_a_torn_final_write_is_repaired_on_open(tmp_path: Path) -> None:
    path = tmp_path / "torn.db"
    wal = Path(f"{path}-wal")
    first = _spawn(str(path), "groups", "5", "1")
    out, _ = first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL
    acked = {int(g): int(s) for _, g, s in (x.split() for x in out.splitlines() if "ACK" in x)}
    assert len(acked) == 5
    durable = wal.stat().st_size
    assert durable > 0  # the crash left the WAL behind, holding every acknowledged append

    second = _spawn(str(path), "groups", "1", "2")
    out, _ = second.communicate(timeout=60)
    assert second.returncode == -signal.SIGKILL
    grown = wal.stat().st_size
    page = 4096
    assert grown >= durable + 24 + page  # the sixth group's frames follow the first five's
    # Cut the WAL in the middle of the sixth group's first frame: its write was torn.
    os.truncate(wal, durable + 24 + page // 2)

    head = _check(path, acked)
    assert head == acked[5]
    with SQLiteLedger(path) as ledger:  # the ledger goes on where the durable part ended
        written = ledger.append("r", group(6, 3), expected=head + 1)
        assert written[0].prev_hash == ledger.get("r", head).hash
    acked[6] = head + 3
    assert _check(path, acked) == head + 3
