"""The app's routes and error handlers: task predictions, OpenAI-compatible chat and
models, health. ``create_app`` wires them to one registry, settings and batcher."""

# No ``from __future__ import annotations`` here: FastAPI reads the per-task
# request models from the endpoint annotations at route creation time.

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pydantic
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ecomlm.serve.middleware import ApiError, error_response
from ecomlm.serve.registry import ModelRegistry, UnknownModelError
from ecomlm.serve.schemas import ChatRequest, format_errors, input_model

log = logging.getLogger("ecomlm.serve")
RunJob = Callable[..., Awaitable[list[Any]]]


def add_error_handlers(app: FastAPI) -> None:
    """Every error as OpenAI-shaped JSON; content errors are 422 naming the field."""

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


def add_task_routes(app: FastAPI, registry: ModelRegistry, settings: Any, run_job: RunJob) -> None:
    """``POST /v1/tasks/{task}/predict`` for every served task (typed request bodies)."""

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


def add_openai_routes(
    app: FastAPI, registry: ModelRegistry, settings: Any, run_job: RunJob
) -> None:
    """OpenAI-compatible chat completions (the model list is in ``add_info_routes``)."""

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
        limit, n_prompt = (
            registry.context_limit(served.name),
            registry.prompt_tokens(served.name, messages),
        )
        if n_prompt + max_tokens > limit:
            raise ApiError(
                422,
                f"field 'messages': the prompt is {n_prompt} tokens; with max_tokens={max_tokens} "
                f"it exceeds the model's context of {limit} tokens",
            )
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


def add_info_routes(app: FastAPI, registry: ModelRegistry, settings: Any, batcher: Any) -> None:
    """``GET /v1/models`` (OpenAI model list) and ``GET /health``."""
    created = int(time.time())

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
