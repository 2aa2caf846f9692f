"""A minimal OpenAI-compatible chat server for the ICL tests (real HTTP, real generations).

``POST /v1/chat/completions`` answers with a local model's greedy generation
(``ecomlm.methods.llm.causal_lm``), ``GET /v1/models`` lists the one served model. Fault
modes make the failure paths testable: ``faults`` is a queue consumed one per
request ("500", "429", "garbage", "slow"); ``mode`` applies to every request
once the queue is empty (same values, plus "no_usage"); ``responder`` replaces
generation by a function of the messages. ``requests`` counts chat requests as
the server saw them.
"""

# No ``from __future__ import annotations``: FastAPI resolves the endpoint annotations.

import asyncio
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

GARBAGE = "~~ %% lorem ipsum ## 42"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ChatServer:
    def __init__(self, model_path: str, model_name: str = "tiny-llama"):
        from ecomlm.methods.llm.causal_lm import load_llm

        self.model, self.tokenizer = load_llm(model_path)
        self.model_name = model_name
        self.faults: deque[str] = deque()
        self.mode: str | None = None
        self.responder: Callable[[list[dict]], str] | None = None
        self.slow_seconds = 2.0
        self.retry_after = "0"
        self.requests = 0
        self.bodies: list[dict] = []
        self.reject_guided = False
        self.auth: str | None = None
        self._lock = threading.Lock()
        self._generate_lock = threading.Lock()
        self.app = self._make_app()
        self.port = free_port()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        with self._lock:
            self.faults.clear()
            self.mode, self.responder, self.requests = None, None, 0
            self.reject_guided = False
            self.bodies.clear()

    def _generate(self, messages: list[dict], max_tokens: int) -> tuple[str, int, int]:
        from ecomlm.methods.llm.causal_lm import generate, prompt_text

        prompt = prompt_text(self.tokenizer, messages)
        with self._generate_lock:
            text = generate(self.model, self.tokenizer, [prompt], max_new_tokens=max_tokens)[0]
        n_prompt = len(self.tokenizer(prompt, add_special_tokens=False).input_ids)
        n_out = len(self.tokenizer(text, add_special_tokens=False).input_ids)
        return text, n_prompt, n_out

    def _make_app(self) -> Any:
        from fastapi import FastAPI, Request
        from fastapi.concurrency import run_in_threadpool
        from fastapi.responses import JSONResponse

        app = FastAPI()

        def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
            body = {"error": {"message": message, "type": "test_fault", "code": status}}
            return JSONResponse(body, status_code=status, headers=headers)

        @app.get("/v1/models")
        def models() -> dict:
            card = {"id": self.model_name, "object": "model", "created": 0, "owned_by": "tests"}
            return {"object": "list", "data": [card]}

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Any:
            body = await request.json()
            with self._lock:
                self.requests += 1
                self.bodies.append(body)
                self.auth = request.headers.get("authorization")
                fault = self.faults.popleft() if self.faults else self.mode
            if fault == "500":
                return error(500, "internal error (test fault)")
            if fault == "401_echo":  # a careless server that echoes the caller's key
                return error(401, f"invalid credentials: {request.headers.get('authorization')}")
            if fault == "429":
                return error(429, "rate limited (test fault)", {"Retry-After": self.retry_after})
            if fault == "slow":
                await asyncio.sleep(self.slow_seconds)
            if body.get("model") != self.model_name:
                return error(404, f"model {body.get('model')!r} not found")
            guided = sorted(k for k in body if k.startswith("guided_"))
            if guided and self.reject_guided:  # a server without guided decoding
                return error(400, f"unrecognized request argument: {guided[0]}")
            messages = body["messages"]
            max_tokens = int(body.get("max_tokens") or 16)
            if fault == "garbage":
                text, n_prompt, n_out = GARBAGE, 10, 5
            elif self.responder is not None:
                text, n_prompt, n_out = self.responder(messages), 10, 1
            else:
                text, n_prompt, n_out = await run_in_threadpool(
                    self._generate, messages, max_tokens
                )
            response = {
                "id": f"chatcmpl-{self.requests}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.model_name,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
            }
            if fault != "no_usage":
                response["usage"] = {
                    "prompt_tokens": n_prompt,
                    "completion_tokens": n_out,
                    "total_tokens": n_prompt + n_out,
                }
            return response

        return app

    def start(self) -> "ChatServer":
        self._server, self._thread = start_uvicorn(self.app, self.port)
        return self

    def stop(self) -> None:
        stop_uvicorn(self._server, self._thread)


def start_uvicorn(app: Any, port: int) -> tuple[Any, threading.Thread]:
    """Serve ``app`` on 127.0.0.1:``port`` from a daemon thread; returns once it listens."""
    import uvicorn

    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"test server did not start on port {port}")
        time.sleep(0.02)
    return server, thread


def stop_uvicorn(server: Any, thread: threading.Thread | None) -> None:
    if server is not None:
        server.should_exit = True
    if thread is not None:
        thread.join(timeout=10)
