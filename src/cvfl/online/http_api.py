"""The HTTP/JSON request API (Starlette, served by uvicorn), with /healthz and /metrics.

``POST /v1/score`` takes ``{"ids": [...], "features": [{...}, ...]}`` (features optional) and
answers ``{"scores": [...]}``; a malformed request gets 400 with the field named.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from cvfl.errors import DataError, PeerUnavailableError
from cvfl.online.metrics import CONTENT_TYPE
from cvfl.online.request import refuse, request_from_json

if TYPE_CHECKING:
    from cvfl.online.service import LeaderService

MAX_BODY = 4 << 20


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def _body(request: Request) -> object:
    """The decoded JSON body, read no further than ``MAX_BODY`` bytes."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise refuse("body", f"at most {MAX_BODY} bytes", "more")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise refuse("body", "JSON", f"not JSON ({exc.__class__.__name__})") from None


def make_app(service: LeaderService) -> Starlette:
    """The Starlette application of ``service``."""

    async def score(request: Request) -> Response:
        started = time.perf_counter()
        try:
            parsed = request_from_json(await _body(request), service.section.max_request_ids)
            future = service.submit(parsed)
            results = await asyncio.wrap_future(future)
        except DataError as exc:
            service.metrics.request("http", "invalid", time.perf_counter() - started)
            return _error(400, exc.code, exc.message)
        except PeerUnavailableError as exc:
            return _error(503, exc.code, exc.message)
        service.metrics.request("http", "ok", time.perf_counter() - started)
        return JSONResponse({"scores": [r.to_json() for r in results]})

    async def healthz(request: Request) -> Response:
        body = {"status": "draining" if service.draining else "ok"}
        body["follower"] = "connected" if service.follower_connected else "absent"
        return JSONResponse(body, status_code=503 if service.draining else 200)

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(service.metrics.text(), media_type=CONTENT_TYPE)

    return Starlette(
        routes=[
            Route("/v1/score", score, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )
