"""Subscription patterns: globs over event type names, compiled once into a route table.

A pattern is resolved against the (finite) catalogue when the subscription is made, so
publishing never matches strings: it looks the transition's kind up in a dict.
"""

from __future__ import annotations

import re
from typing import Final

from telic.errors import BadPattern, UnknownEventType
from telic.events.catalogue import CATALOGUE, DERIVED

__all__ = ["MAX_PATTERN", "Routes", "compile_pattern", "matching_types"]

MAX_PATTERN: Final = 512
_ALTERNATIVE: Final = re.compile(r"[a-z0-9_*]+(\.[a-z0-9_*]+)*")

Routes = dict[str, str]
"""Transition kind -> the event type a subscription receives it as."""


def matching_types(pattern: object) -> frozenset[str]:
    """The declared event types ``pattern`` matches; see docs/events.md for the grammar."""
    if not isinstance(pattern, str):
        raise BadPattern(repr(pattern), "a pattern is a string")
    if not pattern:
        raise BadPattern(pattern, "it is empty; use '*' for every event type")
    if len(pattern) > MAX_PATTERN:
        raise BadPattern(pattern[:40] + "...", f"it is longer than {MAX_PATTERN} characters")
    alternatives = pattern.split(",")
    for alt in alternatives:
        if not _ALTERNATIVE.fullmatch(alt):
            raise BadPattern(
                pattern,
                f"{alt!r} is not a glob of dot-separated names of a-z, 0-9, _ and * "
                "(e.g. 'tool.*', '*.failed', 'run.completed')",
            )
    found: set[str] = set()
    for alt in alternatives:
        if "*" not in alt:
            if alt not in CATALOGUE:
                raise UnknownEventType(alt)
            found.add(alt)
            continue
        rx = re.compile(".*".join(map(re.escape, alt.split("*"))))
        hits = {name for name in CATALOGUE if rx.fullmatch(name)}
        if not hits:
            raise BadPattern(pattern, f"{alt!r} matches no declared event type")
        found |= hits
    return frozenset(found)


def compile_pattern(pattern: object) -> Routes:
    """The route table of ``pattern``: each kind it receives, and as which event type.

    A transition is received once: as its own kind if the pattern matches it, else as the
    first derived type (in catalogue order) that the pattern matches and that derives from it.
    """
    types = matching_types(pattern)
    routes: Routes = {}
    for name, et in CATALOGUE.items():
        if not et.derived and name in types:
            routes[name] = name
    for et in DERIVED:
        if et.name in types:
            for kind in sorted(et.sources):
                routes.setdefault(kind, et.name)
    return routes
