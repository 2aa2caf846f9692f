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
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request

from ecomlm.serve.batching import MicroBatcher
from ecomlm.serve.middleware import ApiError, RequestGuard
from ecomlm.serve.middleware import error_body as error_body
from ecomlm.serve.middleware import error_response as error_response
from ecomlm.serve.registry import ModelRegistry
from ecomlm.serve.routes import (
    add_error_handlers,
    add_info_routes,
    add_openai_routes,
    add_task_routes,
)

log = logging.getLogger("ecomlm.serve")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeSettings:
    max_body_bytes: int = 1 << 20  # 1 MiB
    request_timeout_s: float = 60.0
    max_batch_size: int = 16  # items per model call
    max_wait_ms: float = 5.0  # how long the batcher waits for more requests
    max_inputs: int = 64  # examples per predict request
    max_tokens_limit: int = 512  # upper bound on chat max_tokens
    default_max_tokens: int = 128
    api_key: str | None = None  # when set, every route but /health needs "Bearer <key>"


# --------------------------------------------------------------------- app
def create_app(registry: ModelRegistry, settings: ServeSettings | None = None) -> FastAPI:
    settings = settings or ServeSettings()

    def run_batch(
        kind: str, model: str, items: list[Any], options: tuple, deadline: float | None
    ) -> list[Any]:
        if kind == "predict":
            return registry.predict(model, items)
        max_tokens, stop = options
        return registry.chat(model, items, max_tokens, stop, deadline)

    batcher = MicroBatcher(run_batch, settings.max_batch_size, settings.max_wait_ms)

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
        # the caller's deadline: the batcher skips the job after it, generation stops at it
        deadline = time.monotonic() + settings.request_timeout_s
        job = batcher.submit(kind, model, items, options, deadline)
        timed_out = ApiError(
            504, f"request timed out after {settings.request_timeout_s:g}s", "timeout"
        )
        try:
            results = await asyncio.wait_for(job.future, settings.request_timeout_s)
        except TimeoutError:
            raise timed_out from None
        finally:
            for key, value in job.timings().items():
                setattr(request.state, key, value)
        if any(getattr(r, "timed_out", False) for r in results):
            raise timed_out  # generation was cut at the deadline: not a complete answer
        return results

    add_error_handlers(app)
    add_task_routes(app, registry, settings, run_job)
    add_openai_routes(app, registry, settings, run_job)
    add_info_routes(app, registry, settings, batcher)
    app.add_middleware(
        RequestGuard, max_body_bytes=settings.max_body_bytes, api_key=settings.api_key
    )
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
    settings = settings or ServeSettings()
    if not settings.api_key and host not in LOOPBACK:
        log.warning(json.dumps({"event": "warning", "message": (
            f"serving on {host} without an API key: anyone who can reach this address can use "
            "the models; pass --api-key (or set ECOMLM_API_KEY)")}))  # fmt: skip
    uvicorn.run(create_app(registry, settings), host=host, port=port, access_log=False)
