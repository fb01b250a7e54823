"""Test-session settings shared by every test package.

Real model requests are forbidden for the whole session: a model mind pointed anywhere but
this machine raises :class:`telic.errors.ModelRequestsForbidden` (the adapters' tests talk to
a local server on 127.0.0.1, which stays allowed).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import telic.minds


@pytest.fixture(autouse=True, scope="session")
def _forbid_model_requests() -> Iterator[None]:
    before = telic.minds.ALLOW_MODEL_REQUESTS
    telic.minds.ALLOW_MODEL_REQUESTS = False
    yield
    telic.minds.ALLOW_MODEL_REQUESTS = before
