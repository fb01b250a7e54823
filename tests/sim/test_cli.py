"""``python -m telic.sim`` and ``telic sim`` through their real entry points."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from telic.sim import SeedReport, Violation, cli, generate
from telic.sim.runner import Escape
from telic.sim.scenario import MindFault

from .kit import CLEAN_SEED


def _run(*args: str, module: str = "telic.sim") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TELIC_SIM_TRACE"}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_a_passing_seed_exits_0_with_a_summary() -> None:
    plan = "[]"
    proc = _run("--seed", str(CLEAN_SEED), "--plan", plan)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("1 seeds: 1 passed, 0 failed")


def test_json_report_of_several_seeds() -> None:
    proc = _run("--seeds", "3", "--start", str(CLEAN_SEED), "--json", "--no-shrink")
    report = json.loads(proc.stdout)
    assert report["seeds"] == 3
    assert report["passed"] + report["failed"] == 3
    assert proc.returncode == (1 if report["failed"] else 0)
    for f in report["failures"]:
        assert f["reproduce"].startswith("python -m telic.sim --seed ")


def test_a_failing_seed_prints_a_one_line_reproducer_that_reproduces_it() -> None:
    # A hanging approver is harmless; a mind that never answers is the kernel's to time
    # out. Whether or not this branch's kernel survives it, the reproducer must say the same.
    fault = MindFault(agent="a1", tick=1, effect="hang")
    plan = generate(CLEAN_SEED).with_faults((fault,)).plan_json()
    first = _run("--seed", str(CLEAN_SEED), "--plan", plan, "--json")
    report = json.loads(first.stdout)
    for f in report["failures"]:
        line = f["reproduce"]
        assert "\n" not in line
        again = subprocess.run(
            line.replace("python", sys.executable, 1) + " --json",
            shell=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert json.loads(again.stdout)["failures"][0]["violations"] == f["violations"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--plan", "[]"), "--plan needs --seed"),
        (("--seed", "1", "--plan", "{oops"), "--plan is not a fault plan"),
        (("--seeds", "0"), "--seeds must be at least 1"),
        (("--real-timeout", "0"), "--real-timeout must be positive"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args: tuple[str, ...], says: str) -> None:
    proc = _run(*args)
    assert proc.returncode == 2
    assert says in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_telic_sim_is_the_same_command() -> None:
    proc = _run("sim", "--seed", str(CLEAN_SEED), "--plan", "[]", "--json", module="telic")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["passed"] == 1
    bad = _run("sim", "--plan", "[]", module="telic")
    assert bad.returncode == 2 and "telic sim: --plan needs --seed" in bad.stderr
    assert "sim" in _run("--help", module="telic").stdout


def test_trace_prints_the_traceback_of_what_escaped() -> None:
    report = SeedReport(
        1,
        generate(1),
        (Violation("no-crash", "TypeError escaped"),),
        "running",
        "",
        escapes=(Escape(1, "TypeError", "x", "Traceback (most recent call last):\n  boom", False),),
    )
    traced, plain = io.StringIO(), io.StringIO()
    cli._print_failure(report, traced, trace=True)  # pyright: ignore[reportPrivateUsage]
    cli._print_failure(report, plain, trace=False)  # pyright: ignore[reportPrivateUsage]
    assert "Traceback (most recent call last):" in traced.getvalue()
    assert "Traceback" not in plain.getvalue()
    assert "reproduce: python -m telic.sim --seed 1 --plan" in plain.getvalue()
