"""``telic leases`` lists who owns which run; ``telic resume`` of a run another process owns is
one line and exit 1, and goes through once that owner's lease has expired."""

from __future__ import annotations

import json
import time
from pathlib import Path

from telic.ledger import open_ledger

from .conftest import Telic


def test_leases_are_listed_and_a_live_one_refuses_a_resume(telic: Telic, tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    telic("demo", "--instant", "--db", str(db), "--out", str(tmp_path / "o"))
    assert "no leases" in telic("leases", "--db", str(db)).stdout
    with open_ledger(str(db)) as ledger:
        (info,) = ledger.runs()
        fork = ledger.fork(info.id, 20, "f").id
        ledger.leases.acquire(fork, "elsewhere", ttl_s=60, node="n9")
    listed = json.loads(telic("leases", "--db", str(db), "--json").stdout)
    assert [(r["run"], r["holder"], r["node"], r["epoch"], r["state"]) for r in listed] == [
        ("f", "elsewhere", "n9", 1, "live")
    ]
    assert 0 < listed[0]["left_s"] <= 60
    refused = telic("resume", "f", "--db", str(db), "--instant", check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith("telic: run 'f' is owned by elsewhere on n9 (lease epoch 1")
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    with open_ledger(str(db)) as ledger:  # the owner renews once more, shortly, then dies
        lease = ledger.leases.acquire("f", "elsewhere", ttl_s=0.1, node="n9")
    while time.time_ns() // 1000 <= lease.expires_us:
        time.sleep(0.05)
    table = telic("leases", "--db", str(db)).stdout
    assert "expired" in table and "elsewhere" in table
    resumed = telic("resume", "f", "--db", str(db), "--instant", "--out", str(tmp_path / "o"))
    assert "DONE" in resumed.stdout or "END" in resumed.stdout
    after = json.loads(telic("leases", "--db", str(db), "--json").stdout)
    assert [(r["run"], r["epoch"], r["state"]) for r in after] == [("f", 3, "released")]
    with open_ledger(str(db)) as ledger:
        assert ledger.verify("f").ok
        assert ledger.state_at("f")["status"] in ("completed", "failed", "stopped")
