"""``python -m telic.sim`` (and ``telic sim``): run seeds, report the ones that fail.

::

    python -m telic.sim --seeds 200              # seeds 0..199
    python -m telic.sim --seeds 10000 --start 5  # the nightly run, from seed 5
    python -m telic.sim --seed 17                # one seed
    python -m telic.sim --seed 17 --plan '[...]' # one seed under the faults given
    python -m telic.sim --seeds 50 --json        # a JSON report on stdout

Exit status: 0 if every seed kept every invariant, 1 if one did not, 2 for bad arguments.
``TELIC_SIM_TRACE=1`` prints the traceback of every error that escaped the kernel.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, TextIO

from pydantic import ValidationError

from telic.errors import SimError
from telic.sim.scenario import FaultPlan, fault_plan
from telic.sim.seeds import SeedReport, simulate

__all__ = ["main", "parse_plan", "run_seeds"]


def parse_plan(text: str) -> FaultPlan:
    """A ``--plan`` argument as a fault plan, or a one-line :class:`SimError`."""
    try:
        return fault_plan(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(plan)"
        raise SimError(
            f"--plan is not a fault plan: {where}: {first['msg']} "
            "(give a JSON list of faults, as a failing seed's reproducer prints it)"
        ) from None


def run_seeds(
    seeds: Sequence[int],
    *,
    faults: FaultPlan | None = None,
    minimise: bool = True,
    real_timeout_s: float = 30.0,
    out: TextIO | None = None,
) -> list[SeedReport]:
    """Judge each seed; print each failure to ``out`` as it is found."""
    reports: list[SeedReport] = []
    trace = os.environ.get("TELIC_SIM_TRACE") == "1"
    for seed in seeds:
        report = simulate(seed, faults=faults, minimise=minimise, real_timeout_s=real_timeout_s)
        reports.append(report)
        if out is not None and not report.ok:
            _print_failure(report, out, trace=trace)
    return reports


def _print_failure(report: SeedReport, out: TextIO, *, trace: bool) -> None:
    first, *rest = report.violations
    out.write(f"seed {report.seed}: FAIL {first}\n")
    for v in rest:
        out.write(f"  also {v}\n")
    if report.fired:
        out.write(f"  fired: {'; '.join(report.fired)}\n")
    if report.minimal is not None:
        out.write(f"  faults: {len(report.scenario.faults)}, minimised to {len(report.minimal)}\n")
    out.write(f"  reproduce: {report.reproducer()}\n")
    if trace:
        for e in report.escapes:
            out.write(f"  traceback (process {e.lifetime}):\n")
            out.write("".join(f"    {line}\n" for line in e.traceback.rstrip().splitlines()))
    out.flush()


def summary(reports: Sequence[SeedReport], elapsed_s: float) -> dict[str, Any]:
    failed = [r for r in reports if not r.ok]
    causes = Counter(r.cause for r in failed)
    return {
        "seeds": len(reports),
        "passed": len(reports) - len(failed),
        "failed": len(failed),
        "causes": dict(sorted(causes.items())),
        "elapsed_s": round(elapsed_s, 3),
        "seeds_per_s": round(len(reports) / elapsed_s, 2) if elapsed_s > 0 else None,
        "failures": [
            {
                "seed": r.seed,
                "cause": r.cause,
                "violations": [
                    {"invariant": v.invariant, "detail": v.detail} for v in r.violations
                ],
                "faults": json.loads(r.scenario.plan_json()),
                "fired": list(r.fired),
                "minimal": None
                if r.minimal is None
                else json.loads(r.scenario.with_faults(r.minimal).plan_json()),
                "reproduce": r.reproducer(),
            }
            for r in failed
        ],
    }


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Run telic under seeded random swarms and faults; check invariants.",
    )
    p.add_argument("--seeds", type=int, default=100, help="how many seeds to run (default 100)")
    p.add_argument("--start", type=int, default=0, help="the first seed (default 0)")
    p.add_argument("--seed", type=int, default=None, help="run this one seed")
    p.add_argument("--plan", default=None, help="with --seed: run under this fault plan (JSON)")
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.add_argument("--no-shrink", action="store_true", help="do not minimise failing plans")
    p.add_argument(
        "--real-timeout",
        type=float,
        default=30.0,
        help="real seconds one simulated process may take before it counts as hung",
    )
    return p


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m telic.sim") -> int:
    """Run the seeds ``argv`` asks for; the exit status (0 all kept, 1 some failed, 2 bad
    arguments)."""
    parser = _parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed its one-line usage error
        return int(exc.code or 0)
    try:
        seeds, faults = _selection(args)
    except SimError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    # Subscribers that fail on purpose are logged by the event kernel; not news here.
    logging.getLogger("telic").addHandler(logging.NullHandler())
    logging.getLogger("telic").propagate = False
    t0 = time.perf_counter()
    reports = run_seeds(
        seeds,
        faults=faults,
        minimise=not args.no_shrink,
        real_timeout_s=args.real_timeout,
        out=None if args.json else sys.stdout,
    )
    s = summary(reports, time.perf_counter() - t0)
    if args.json:
        sys.stdout.write(json.dumps(s) + "\n")
    else:
        causes = ", ".join(f"{k} {v}" for k, v in s["causes"].items())
        print(
            f"{s['seeds']} seeds: {s['passed']} passed, {s['failed']} failed"
            + (f" ({causes})" if causes else "")
            + f" in {s['elapsed_s']:.1f} s ({s['seeds_per_s']} seeds/s)"
        )
    return 1 if s["failed"] else 0


def _selection(args: argparse.Namespace) -> tuple[list[int], FaultPlan | None]:
    if args.plan is not None and args.seed is None:
        raise SimError("--plan needs --seed: a fault plan belongs to one seed's swarm")
    if args.real_timeout <= 0:
        raise SimError(f"--real-timeout must be positive, not {args.real_timeout}")
    faults = None if args.plan is None else parse_plan(args.plan)
    if args.seed is not None:
        return [args.seed], faults
    if args.seeds < 1:
        raise SimError(f"--seeds must be at least 1, not {args.seeds}")
    if args.start < 0:
        raise SimError(f"--start must not be negative, not {args.start}")
    return list(range(args.start, args.start + args.seeds)), None
