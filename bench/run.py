"""Run telic's benchmarks: ``python bench/run.py [--only GROUP] [--json] [--repeats N]``.

Prints each figure beside its target (median of several runs). ``--json`` prints a JSON
array of ``{group, name, value, unit, target, met}`` objects.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Figure


def groups() -> dict[str, object]:
    import groups as pkg

    found: dict[str, object] = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        mod = importlib.import_module(f"groups.{info.name}")
        if hasattr(mod, "GROUP") and hasattr(mod, "collect"):
            found[mod.GROUP] = mod
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", action="append", help="run only this group (repeatable)")
    ap.add_argument("--json", action="store_true", help="print a JSON array of figures")
    ap.add_argument("--repeats", type=int, default=5, help="runs per figure (median)")
    args = ap.parse_args(argv)
    available = groups()
    chosen = args.only or list(available)
    unknown = [g for g in chosen if g not in available]
    if unknown:
        print(
            f"unknown group(s): {', '.join(unknown)}; have: {', '.join(available)}", file=sys.stderr
        )
        return 2
    figures: list[Figure] = []
    for name in chosen:
        mod = available[name]
        got: list[Figure] = mod.collect(args.repeats)  # type: ignore[attr-defined]
        figures.extend(got)
        if not args.json:
            for f in got:
                _print(f)
    if args.json:
        print(json.dumps([f.to_json() for f in figures], indent=1))
    return 0


def _print(f: Figure) -> None:
    if f.target is None:
        verdict, target = "ref", ""
    else:
        verdict = "met" if f.met else "MISSED"
        target = f"{f.compare} {f.target:,.4g} {f.unit}"
    note = f"  ({f.note})" if f.note else ""
    print(
        f"{f.group:<8} {f.name:<58} {f.value:>14,.4g} {f.unit:<10} {target:<22} {verdict}{note}",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
