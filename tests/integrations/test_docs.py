"""docs/integrations.md: every Python example runs as it is, from the repository's root."""

from __future__ import annotations

import os
import re
from pathlib import Path

import mcp.client.stdio  # noqa: F401  # before any test: its default errlog is sys.stderr at import  # pyright: ignore[reportUnusedImport]
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "integrations.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_page_has_examples_for_each_integration() -> None:
    assert len(BLOCKS) == 3
    assert "telic.otel" in BLOCKS[0] and "telic.mcp" in BLOCKS[1] and 'telic", "mcp"' in BLOCKS[2]


@pytest.mark.parametrize("code", BLOCKS)
def test_example_runs(code: str, capfd: pytest.CaptureFixture[str]) -> None:
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        exec(compile(code, str(DOC), "exec"), {"__name__": "docs_example"})
    finally:
        os.chdir(cwd)
    out = capfd.readouterr().out
    assert "completed" in out or "invoke_agent telic" in out
