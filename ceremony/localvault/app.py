"""localvault.app: the HTTP face of the vault: Starlette routes for the Key Vault keys REST API.

Owns routing, the bearer gate, api-version and body-size checks, fault injection and error shapes.
Never decides what an operation means (the service does) and never sends a stack trace.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ceremony.localvault.auth import BearerGate
from ceremony.localvault.errors import ApiError, bad_parameter, internal_error
from ceremony.localvault.faults import FaultPlan
from ceremony.localvault.params import Body, parse_json
from ceremony.localvault.service import VaultService

log = logging.getLogger("ceremony.localvault")

MAX_BODY = 256 * 1024
# Operations whose cost a client chooses (RSA generation, unwrapping and checking an imported
# key) run in a few threads of their own, so that a flood of them queues behind itself while
# every other request is answered.
HEAVY_OPERATIONS = frozenset({"create", "import"})
HEAVY_THREADS = 2
DROP_FLAG = "ceremony.localvault.drop"

Handler = Callable[[VaultService, Request, Body], Any]


class ConnectionDropped(Exception):
    """Raised after a committed request's headers went out, so the server cuts the connection."""


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise ApiError(413, "RequestTooLarge", f"The request body exceeds {MAX_BODY} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(413, "RequestTooLarge", f"The request body exceeds {MAX_BODY} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _paging(request: Request) -> tuple[int, int | None]:
    """($skiptoken, maxresults) from the query, as integers."""
    values = []
    for field in ("$skiptoken", "maxresults"):
        raw = request.query_params.get(field)
        if raw is not None and not raw.isdigit():
            raise bad_parameter(f"The query parameter {field} must be a whole number.")
        values.append(None if raw is None else int(raw))
    return values[0] or 0, values[1]


def _heavy_limiter(app_state: Any) -> anyio.CapacityLimiter:
    """The threads heavy operations share (made on first use, inside the event loop)."""
    limiter = getattr(app_state, "heavy_limiter", None)
    if limiter is None:
        limiter = app_state.heavy_limiter = anyio.CapacityLimiter(HEAVY_THREADS)
    return limiter


def endpoint(operation: str, handler: Handler) -> Callable[..., Any]:
    """Wrap a service call with the gate, checks, faults and error shaping every route shares."""

    async def run(request: Request) -> Response:
        app_state = request.app.state
        try:
            app_state.gate.check(request.headers.get("authorization"))
            if not request.query_params.get("api-version"):
                raise bad_parameter("The 'api-version' query parameter is missing.")
            fault = app_state.faults.take(operation, after_commit=False)
            if fault is not None:
                log.warning("fault %s: refusing %s %s", fault, request.method, request.url.path)
                raise fault.as_error()
            body = parse_json(await _read_body(request))
            if operation in HEAVY_OPERATIONS:
                limiter = _heavy_limiter(app_state)
                call = functools.partial(handler, app_state.service, request, body)
                result = await anyio.to_thread.run_sync(call, limiter=limiter)
            else:
                result = await run_in_threadpool(handler, app_state.service, request, body)
        except ApiError as error:
            return error_response(error)
        except Exception:
            log.exception("unexpected failure in %s %s", request.method, request.url.path)
            return error_response(internal_error())
        fault = app_state.faults.take(operation, after_commit=True)
        if fault is not None:
            log.warning(
                "fault %s: %s committed; dropping the connection before the answer",
                fault,
                operation,
            )
            request.scope[DROP_FLAG] = True
        if result is None:
            return Response(status_code=204)
        return JSONResponse(result)

    return run


def _p(request: Request, key: str) -> str:
    return request.path_params.get(key, "")


ROUTES = [
    Route("/keys", endpoint("list", lambda s, r, b: s.list_keys(*_paging(r))), methods=["GET"]),
    Route(
        "/keys/{name}/create",
        endpoint("create", lambda s, r, b: s.create(_p(r, "name"), b)),
        methods=["POST"],
    ),
    Route(
        "/keys/{name}/versions",
        endpoint("versions", lambda s, r, b: s.list_versions(_p(r, "name"), *_paging(r))),
        methods=["GET"],
    ),
    Route(
        "/keys/{name}",
        endpoint("import", lambda s, r, b: s.import_key(_p(r, "name"), b)),
        methods=["PUT"],
    ),
    Route(
        "/keys/{name}",
        endpoint("delete", lambda s, r, b: s.delete(_p(r, "name"))),
        methods=["DELETE"],
    ),
    Route("/keys/{name}", endpoint("get", lambda s, r, b: s.get(_p(r, "name"))), methods=["GET"]),
    Route("/keys/{name}/", endpoint("get", lambda s, r, b: s.get(_p(r, "name"))), methods=["GET"]),
    Route(
        "/keys/{name}/{version}",
        endpoint("get", lambda s, r, b: s.get(_p(r, "name"), _p(r, "version"))),
        methods=["GET"],
    ),
    Route(
        "/keys/{name}/",
        endpoint("update", lambda s, r, b: s.update(_p(r, "name"), "", b)),
        methods=["PATCH"],
    ),
    Route(
        "/keys/{name}/{version}",
        endpoint("update", lambda s, r, b: s.update(_p(r, "name"), _p(r, "version"), b)),
        methods=["PATCH"],
    ),
]
for _op in ("sign", "verify", "encrypt", "decrypt", "wrapkey", "unwrapkey"):
    for _path in (f"/keys/{{name}}/{{version}}/{_op}", f"/keys/{{name}}//{_op}"):
        ROUTES.append(
            Route(
                _path,
                endpoint(
                    _op,
                    lambda s, r, b, op=_op: s.operate(_p(r, "name"), _p(r, "version"), op, b),
                ),
                methods=["POST"],
            )
        )
ROUTES += [
    Route(
        "/deletedkeys",
        endpoint("list-deleted", lambda s, r, b: s.list_deleted(*_paging(r))),
        methods=["GET"],
    ),
    Route(
        "/deletedkeys/{name}",
        endpoint("get-deleted", lambda s, r, b: s.get_deleted(_p(r, "name"))),
        methods=["GET"],
    ),
    Route(
        "/deletedkeys/{name}",
        endpoint("purge", lambda s, r, b: s.purge(_p(r, "name"))),
        methods=["DELETE"],
    ),
    Route(
        "/deletedkeys/{name}/recover",
        endpoint("recover", lambda s, r, b: s.recover(_p(r, "name"))),
        methods=["POST"],
    ),
    Route("/rng", endpoint("rng", lambda s, r, b: s.random_bytes(b)), methods=["POST"]),
]


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        error = ApiError(405, "MethodNotAllowed", f"{request.method} is not allowed here.")
    else:
        error = ApiError(404, "NotFound", f"{request.url.path} is not part of the keys API.")
    return error_response(error)


class DropAfterCommit:
    """Outermost ASGI layer: for a request flagged by a fault, cut the connection mid-answer.

    The status line goes out, then the app raises; the server closes the transport, so the client
    sees a broken response and never the body, although the operation was committed.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def guarded(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.start" and scope.get(DROP_FLAG):
                raise ConnectionDropped("fault: connection dropped after commit")

        await self.app(scope, receive, guarded)


class _QuietDrops(logging.Filter):
    """Keep the server log free of tracebacks for drops we caused on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionDropped))


_QUIET_DROPS = _QuietDrops()


def build_app(service: VaultService, gate: BearerGate, faults: FaultPlan) -> ASGIApp:
    """The ASGI application of one vault."""
    app = Starlette(routes=ROUTES, exception_handlers={404: _http_error, 405: _http_error})
    app.router.redirect_slashes = False
    app.state.service = service
    app.state.gate = gate
    app.state.faults = faults
    logging.getLogger("uvicorn.error").addFilter(_QUIET_DROPS)
    return DropAfterCommit(app)
