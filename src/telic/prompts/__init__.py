"""Role prompts, written as Markdown files that users can read and override.

The package ships one file per reference role (``researcher.md``, ``planner.md``,
``budgeter.md``, ``skeptic.md``, ``verifier.md``, ``coordinator.md``), one for the explorers
the kernel spawns on uncertain questions (``explorer.md``), a template for new roles
(``_template.md``) and the proposal protocol every model mind is told (``_protocol.md``).

:func:`role_prompt` looks for ``<role>.md`` in, first to last: the ``directory`` argument, the
directories in ``TELIC_PROMPTS`` (``os.pathsep``-separated), then this package. A role with no
file gets the template with its name filled in. HTML comments (``<!-- ... -->``) are notes for
the people editing the file and are removed.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from string import Template

from telic.errors import ConfigError

__all__ = ["ENV_VAR", "ROLES", "protocol_prompt", "role_prompt", "shipped_prompt"]

ROLES = ("budgeter", "coordinator", "planner", "researcher", "skeptic", "verifier")
"""The reference roles that ship a prompt."""

ENV_VAR = "TELIC_PROMPTS"
"""Directories searched for ``<role>.md`` before the shipped prompts."""

_ROLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_COMMENT = re.compile(r"<!--.*?-->\s*", re.DOTALL)


def shipped_prompt(name: str) -> str | None:
    """The text of a file shipped in this package (``"planner"``, ``"_template"``), or None."""
    item = resources.files(__name__).joinpath(f"{name}.md")
    return item.read_text(encoding="utf-8") if item.is_file() else None


def _search_dirs(directory: str | Path | None) -> list[Path]:
    dirs: list[Path] = []
    if directory is not None:
        dirs.append(Path(directory))
    env = os.environ.get(ENV_VAR, "")
    dirs.extend(Path(d) for d in env.split(os.pathsep) if d)
    return dirs


def _load(name: str, directory: str | Path | None) -> str | None:
    for d in _search_dirs(directory):
        path = d / f"{name}.md"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return shipped_prompt(name)


def role_prompt(role: str, *, directory: str | Path | None = None) -> str:
    """The prompt for ``role`` (comments removed), from a user directory or the package."""
    if not _ROLE_NAME.match(role):
        raise ConfigError(
            f"role name {role!r} cannot name a prompt file; use letters, digits, '_', '-', '.'"
        )
    text = _load(role, directory)
    if text is None:
        template = _load("_template", directory) or ""
        text = Template(template).safe_substitute(role=role)
    return _COMMENT.sub("", text).strip() + "\n"


def protocol_prompt(*, directory: str | Path | None = None) -> str:
    """How a mind answers: the proposal format (``_protocol.md``)."""
    return _COMMENT.sub("", _load("_protocol", directory) or "").strip() + "\n"
