"""Errors as HTTP answers: every telic error maps to one status and a JSON body
(:class:`~telic.serve.models.ErrorOut`); nothing reaches a client as a traceback."""

from __future__ import annotations

import logging
from typing import Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from telic.errors import (
    BadPattern,
    BadSubscription,
    ChainBroken,
    ClusterError,
    ConfigError,
    Forbidden,
    NotAwaitingApproval,
    RecordError,
    RunExists,
    RunNotFound,
    RunNotHosted,
    RunNotResumable,
    SequenceConflict,
    SequenceError,
    TelicError,
    TokenInvalid,
    Unauthenticated,
    UnknownEventType,
)

__all__ = ["install", "problem"]

log = logging.getLogger(__name__)

_STATUS: Final[tuple[tuple[type[TelicError], int, str], ...]] = (
    (RunNotFound, 404, "not_found"),
    (Unauthenticated, 401, "unauthenticated"),
    (Forbidden, 403, "forbidden"),
    (SequenceError, 400, "bad_request"),
    (BadPattern, 400, "bad_request"),
    (UnknownEventType, 400, "bad_request"),
    (BadSubscription, 400, "bad_request"),
    (ConfigError, 400, "bad_request"),
    (RecordError, 400, "bad_request"),
    (TokenInvalid, 400, "bad_request"),
    (NotAwaitingApproval, 409, "conflict"),
    (RunNotHosted, 409, "conflict"),
    (RunNotResumable, 409, "conflict"),
    (RunExists, 409, "conflict"),
    (SequenceConflict, 409, "conflict"),
    (ChainBroken, 409, "conflict"),
    (ClusterError, 503, "unavailable"),
)

_CODES: Final = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "bad_request",
    503: "unavailable",
}


def problem(status: int, detail: str, code: str | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        {"error": code or _CODES.get(status, "error"), "detail": detail},
        status_code=status,
        headers=headers,
    )


def _telic(_: Request, exc: Exception) -> JSONResponse:
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            return problem(status, str(exc), code)
    log.error("unmapped telic error: %s", exc, exc_info=exc)
    return problem(500, f"{type(exc).__name__}: {exc}", "internal")


def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    parts: list[str] = []
    for e in errors[:3]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return problem(400, "; ".join(parts) + more, "bad_request")


def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return problem(exc.status_code, str(exc.detail))


def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error", exc_info=exc)
    return problem(500, f"internal error ({type(exc).__name__}); see the server log", "internal")


def install(app: FastAPI) -> None:
    app.add_exception_handler(TelicError, _telic)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
