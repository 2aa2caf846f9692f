"""Errors in the OpenAI shape and the request guard: API-key check (401), body limit
(413), UTF-8 check (400) and one JSON log line per request."""

import hmac
import json
import logging
import time
import uuid
from typing import Any

from fastapi.responses import JSONResponse

log = logging.getLogger("ecomlm.serve")
OPEN_PATHS = ("/health",)  # answered without an API key (load balancers probe it)


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


def error_body(
    status: int, message: str, kind: str = "invalid_request_error", **extra: Any
) -> dict:
    return {"error": {"message": message, "type": kind, "code": status, **extra}}


def error_response(status: int, message: str, kind: str = "invalid_request_error", **extra: Any):
    return JSONResponse(error_body(status, message, kind, **extra), status_code=status)


class RequestGuard:
    """Pure ASGI middleware: API key (401), body size limit (413), UTF-8 check (400), one
    JSON log line.

    The body is read here (at most ``max_body_bytes``) and replayed to the app.
    """

    def __init__(self, app: Any, max_body_bytes: int, api_key: str | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.api_key = api_key

    def authorized(self, scope: dict) -> bool:
        """No key configured, an open path, or ``Authorization: Bearer <key>``."""
        if not self.api_key or scope.get("path") in OPEN_PATHS:
            return True
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"authorization", b"").decode("latin-1")
        return hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode())

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = uuid.uuid4().hex[:12]
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = {"code": 0}

        async def send_logged(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        async def reject(code: int, message: str) -> None:
            body = json.dumps(error_body(code, message)).encode()
            await send_logged(
                {
                    "type": "http.response.start",
                    "status": code,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send_logged({"type": "http.response.body", "body": body})

        try:
            if not self.authorized(scope):
                await reject(401, "missing or wrong API key: send 'Authorization: Bearer <key>'")
                return
            body = await self._read_body(scope, receive, reject)
            if body is None:
                return
            replayed = False

            async def replay() -> dict:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send_logged)
        finally:
            record = {
                "event": "request",
                "request_id": request_id,
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": status["code"] or 500,
                "latency_ms": round((time.perf_counter() - start) * 1000, 2),
            }
            for key in ("model", "task", "items", "queue_ms", "model_ms", "batch_items"):
                if key in state:
                    record[key] = state[key]
            log.info(json.dumps(record))

    async def _read_body(self, scope: dict, receive: Any, reject: Any) -> bytes | None:
        limit = self.max_body_bytes
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await reject(
                    400, f"invalid Content-Length header {length.decode(errors='replace')!r}"
                )
                return None
            if declared > limit:
                await reject(
                    413, f"request body of {declared} bytes exceeds the {limit}-byte limit"
                )
                return None
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await reject(413, f"request body exceeds the {limit}-byte limit")
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as e:
            await reject(400, f"request body is not valid UTF-8 (invalid byte at offset {e.start})")
            return None
        return body
