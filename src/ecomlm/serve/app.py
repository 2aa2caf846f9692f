"""The REST app: task predictions, an OpenAI-compatible chat API, health and models.

Endpoints
  POST /v1/tasks/{task}/predict   {"model": optional, "inputs": [example, ...]}
                                  or {"model": optional, "input": example}
  POST /v1/chat/completions       OpenAI chat completions (non-streaming, greedy decoding)
  GET  /v1/models                 OpenAI model list (runs and base LLMs, with their task/method)
  GET  /health

Every error is JSON ``{"error": {"message", "type", "code"}}`` (the OpenAI shape,
so OpenAI SDKs surface the message): 400 non-UTF-8 / invalid JSON, 404 unknown
task / model / route, 413 body over the limit, 422 validation (naming the
field), 504 request timeout, 500 an unexpected model failure. All inference
goes through one micro-batcher and one worker thread; see ``batching.py``.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the per-task
# request models from the endpoint annotations at route creation time.

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import pydantic
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ecomlm.serve.batching import MicroBatcher
from ecomlm.serve.registry import ModelRegistry, UnknownModelError
from ecomlm.serve.schemas import format_errors, input_model

log = logging.getLogger("ecomlm.serve")


@dataclass
class ServeSettings:
    max_body_bytes: int = 1 << 20  # 1 MiB
    request_timeout_s: float = 60.0
    max_batch_size: int = 16  # items per model call
    max_wait_ms: float = 5.0  # how long the batcher waits for more requests
    max_inputs: int = 64  # examples per predict request
    max_tokens_limit: int = 512  # upper bound on chat max_tokens
    default_max_tokens: int = 128


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


# --------------------------------------------------------------------- middleware
class RequestGuard:
    """Pure ASGI middleware: body size limit (413), UTF-8 check (400), one JSON log line.

    The body is read here (at most ``max_body_bytes``) and replayed to the app.
    """

    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

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


# --------------------------------------------------------------------- chat schema
class ChatMessage(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.get("text", "") for part in self.content if part.get("type") == "text")


class ChatRequest(pydantic.BaseModel):
    # OpenAI clients send many optional fields; unknown ones are accepted and ignored.
    model_config = pydantic.ConfigDict(extra="allow", protected_namespaces=())
    model: str
    messages: list[ChatMessage] = pydantic.Field(min_length=1)
    max_tokens: int | None = pydantic.Field(None, ge=1)
    max_completion_tokens: int | None = pydantic.Field(None, ge=1)
    n: int = pydantic.Field(1, ge=1, le=1, description="only n=1 is supported")
    stream: bool = False
    stop: str | list[str] | None = None
    temperature: float | None = pydantic.Field(None, ge=0, le=2)  # accepted; decoding is greedy


# --------------------------------------------------------------------- app
def create_app(registry: ModelRegistry, settings: ServeSettings | None = None) -> FastAPI:
    settings = settings or ServeSettings()

    def run_batch(kind: str, model: str, items: list[Any], options: tuple) -> list[Any]:
        if kind == "predict":
            return registry.predict(model, items)
        max_tokens, stop = options
        return registry.chat(model, items, max_tokens, stop)

    batcher = MicroBatcher(run_batch, settings.max_batch_size, settings.max_wait_ms)
    created = int(time.time())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(title="ecomlm", lifespan=lifespan)
    app.state.registry = registry
    app.state.batcher = batcher
    app.state.settings = settings

    async def run_job(
        request: Request, kind: str, model: str, items: list[Any], options: tuple = ()
    ) -> list[Any]:
        job = batcher.submit(kind, model, items, options)
        try:
            return await asyncio.wait_for(job.future, settings.request_timeout_s)
        except TimeoutError:
            raise ApiError(
                504, f"request timed out after {settings.request_timeout_s:g}s", "timeout"
            ) from None
        finally:
            for key, value in job.timings().items():
                setattr(request.state, key, value)

    # ---------------------------------------------------------------- errors
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.message, exc.kind)

    @app.exception_handler(UnknownModelError)
    async def _unknown_model(request: Request, exc: UnknownModelError):
        return error_response(404, str(exc), "not_found_error")

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            ctx = errors[0].get("ctx") or {}
            detail = ctx.get("error", "malformed JSON")
            return error_response(400, f"request body is not valid JSON: {detail}")
        skip = 1 if errors and tuple(errors[0].get("loc", ()))[:1] == ("body",) else 0
        params = [".".join(str(p) for p in e.get("loc", ())[skip:]) for e in errors]
        return error_response(
            422,
            format_errors(errors, skip=skip),
            param=params[0] if params else None,
            details=[
                {"field": p, "message": e.get("msg"), "type": e.get("type")}
                for p, e in zip(params, errors, strict=True)
            ],
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
        return error_response(exc.status_code, message)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return error_response(500, f"{type(exc).__name__}: {exc}", "server_error")

    # ---------------------------------------------------------------- task routes
    def add_task_route(task_name: str, example_type: type) -> None:
        example_model = input_model(example_type)
        body_model = pydantic.create_model(
            f"{example_type.__name__}PredictRequest",
            __config__=pydantic.ConfigDict(extra="forbid", protected_namespaces=()),
            model=(str | None, None),
            inputs=(
                list[example_model] | None,
                pydantic.Field(None, min_length=1, max_length=settings.max_inputs),
            ),
            input=(example_model | None, None),
        )

        async def predict(body, request: Request) -> dict:
            if (body.inputs is None) == (body.input is None):
                raise ApiError(422, "give exactly one of 'inputs' (a list) or 'input'")
            served = registry.resolve(task_name, body.model)
            given = body.inputs if body.inputs is not None else [body.input]
            examples = [example_type(**item.model_dump()) for item in given]
            request.state.model, request.state.task = served.name, task_name
            request.state.items = len(examples)
            predictions = await run_job(request, "predict", served.name, examples)
            return {
                "model": served.name,
                "task": task_name,
                "predictions": [p.to_dict() for p in predictions],
            }

        predict.__annotations__ = {"body": body_model, "request": Request, "return": dict}
        app.add_api_route(
            f"/v1/tasks/{task_name}/predict",
            predict,
            methods=["POST"],
            summary=f"Predict {task_name}",
        )

    for task_name, task in registry.tasks().items():
        add_task_route(task_name, task.example_type)

    @app.post("/v1/tasks/{task}/predict")
    async def unknown_task(task: str) -> dict:
        served = ", ".join(registry.tasks()) or "none"
        raise ApiError(404, f"unknown task {task!r}; served tasks: {served}", "not_found_error")

    # ---------------------------------------------------------------- OpenAI-compatible
    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest, request: Request) -> dict:
        if body.stream:
            raise ApiError(400, "stream=true is not supported; send stream=false")
        served = registry.get(body.model)
        if not served.can_chat:
            raise ApiError(
                400,
                f"model {body.model!r} is a {served.method!r} run, not a chat model; "
                f"use POST /v1/tasks/{served.task.name}/predict",
            )
        max_tokens = body.max_completion_tokens or body.max_tokens or settings.default_max_tokens
        if max_tokens > settings.max_tokens_limit:
            raise ApiError(
                422, f"field 'max_tokens': must be <= {settings.max_tokens_limit}, got {max_tokens}"
            )
        stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
        messages = [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
            for m in body.messages
        ]
        request.state.model = served.name
        (out,) = await run_job(request, "chat", served.name, [messages], (max_tokens, stop))
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": served.name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": out.text},
                    "finish_reason": out.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": out.prompt_tokens,
                "completion_tokens": out.completion_tokens,
                "total_tokens": out.prompt_tokens + out.completion_tokens,
            },
        }

    @app.get("/v1/models")
    async def list_models() -> dict:
        return {
            "object": "list",
            "data": [
                {"object": "model", "created": created, "owned_by": "ecomlm", **m.info()}
                for m in registry.models.values()
            ],
        }

    @app.get("/health")
    async def health() -> dict:
        return {
            "status": "ok",
            "models": sorted(registry.models),
            "tasks": sorted(registry.tasks()),
            "queue_depth": batcher.queue_depth,
            "batching": {
                "max_batch_size": settings.max_batch_size,
                "max_wait_ms": settings.max_wait_ms,
                **batcher.stats.as_dict(),
            },
        }

    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes)
    return app


def configure_logging(level: int = logging.INFO) -> None:
    """One JSON object per line on stderr for ``ecomlm.serve`` (request logs included)."""

    class JsonFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            message = record.getMessage()
            try:
                payload = json.loads(message)
                if not isinstance(payload, dict):
                    payload = {"message": message}
            except json.JSONDecodeError:
                payload = {"message": message}
            out = {"ts": round(record.created, 3), "level": record.levelname.lower(), **payload}
            if record.exc_info:
                out["exception"] = self.formatException(record.exc_info)
            return json.dumps(out, ensure_ascii=False)

    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def serve(
    registry: ModelRegistry,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: ServeSettings | None = None,
) -> None:
    """Run the app with uvicorn until interrupted (access log replaced by our JSON lines)."""
    import uvicorn

    configure_logging()
    uvicorn.run(create_app(registry, settings), host=host, port=port, access_log=False)
