"""Server faults a hostile but fair client can cause: no key, oversized prompts, empty or
invalid text, and a request that would hold the only worker — each a clear 4xx/504,
never a 500, and the server keeps serving."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient
from test_serve_app import EXAMPLES, make_adapter_run

from ecomlm.serve.app import ServeSettings, create_app

KEY = "test-serve-key-123456"


@pytest.fixture(scope="module")
def registry(tiny_llama, tmp_path_factory):
    from ecomlm.serve.registry import ModelRegistry

    root = tmp_path_factory.mktemp("serve-fault-runs")
    runs = [
        make_adapter_run(tiny_llama, root / "esci_a", seed=1),
        make_adapter_run(tiny_llama, root / "ner_a", seed=3, task="queryner"),
    ]
    return ModelRegistry.from_args([str(p) for p in runs])


@pytest.fixture(scope="module")
def client(registry):
    settings = ServeSettings(api_key=KEY, max_tokens_limit=64)
    with TestClient(create_app(registry, settings), raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {KEY}"
        yield c


def test_api_key_required_except_health(client):
    body = {"input": EXAMPLES[0]}
    assert client.post("/v1/tasks/esci/predict", json=body).status_code == 200
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}):
        r = client.post("/v1/tasks/esci/predict", json=body, headers=headers)
        assert r.status_code == 401 and "API key" in r.json()["error"]["message"]
    assert client.get("/health", headers={"Authorization": ""}).status_code == 200


def test_prompt_over_the_context_is_422_naming_the_limit(client, registry):
    limit = registry.context_limit("esci_a")
    words = " ".join(["shoes"] * (limit + 50))
    r = client.post("/v1/chat/completions",
                    json={"model": "esci_a", "max_tokens": 8,
                          "messages": [{"role": "user", "content": words}]})  # fmt: skip
    assert r.status_code == 422
    message = r.json()["error"]["message"]
    assert "field 'messages'" in message and f"context of {limit} tokens" in message


@pytest.mark.parametrize(
    ("task", "item", "field"),
    [
        ("esci", {"query": "", "product_title": "shoes"}, "query"),
        ("esci", {"query": "   ", "product_title": "shoes"}, "query"),
        ("esci", {"query": "red\x00shoes", "product_title": "shoes"}, "query"),
        ("esci", {"query": "red \ud800", "product_title": "shoes"}, "query"),
        ("queryner", {"tokens": []}, "tokens"),
        ("queryner", {"tokens": ["red", ""]}, "tokens.1"),
        ("queryner", {"tokens": ["red", "\x07"]}, "tokens.1"),
    ],
)
def test_content_errors_are_422_naming_the_field(client, task, item, field):
    # json.dumps escapes a lone surrogate as \\ud800, as a client's JSON encoder would
    r = client.post(f"/v1/tasks/{task}/predict", content=json.dumps({"input": item}),
                    headers={"Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 422, r.text
    assert f"field 'input.{field}'" in r.json()["error"]["message"]


def test_lone_surrogate_in_chat_is_422(client):
    body = {"model": "esci_a", "messages": [{"role": "user", "content": "a\ud800"}]}
    r = client.post("/v1/chat/completions", content=json.dumps(body),
                    headers={"Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 422 and "surrogate" in r.json()["error"]["message"]


def test_deadline_frees_the_worker(registry):
    """Generation stops at the request's deadline (a transformers StoppingCriteria), so a
    request asking for the whole context answers 504 at its deadline and cannot hold the
    only worker past it: the next request is served right after."""
    messages = [{"role": "user", "content": "tell me a long story"}]
    budget = registry.context_limit("esci_a") - registry.prompt_tokens("esci_a", messages) - 1
    registry.chat("esci_a", [messages], 4)  # first-call set-up must not inflate `unbounded`
    start = time.perf_counter()
    (free,) = registry.chat("esci_a", [messages], budget)
    unbounded = time.perf_counter() - start
    assert not free.timed_out and free.completion_tokens > 100
    start = time.perf_counter()
    (cut,) = registry.chat("esci_a", [messages], budget, deadline=time.monotonic() + unbounded / 10)
    bounded = time.perf_counter() - start
    assert cut.timed_out and cut.completion_tokens < free.completion_tokens / 2
    assert bounded < unbounded / 3

    settings = ServeSettings(request_timeout_s=unbounded / 10, max_tokens_limit=budget)
    with TestClient(create_app(registry, settings), raise_server_exceptions=False) as c:
        start = time.perf_counter()
        r = c.post("/v1/chat/completions",
                   json={"model": "esci_a", "messages": messages,
                         "max_tokens": budget})  # fmt: skip
        assert r.status_code == 504 and "timed out" in r.json()["error"]["message"]
        r = c.post("/v1/tasks/esci/predict", json={"input": EXAMPLES[0]})
        assert r.status_code == 200  # the worker is free again
        assert time.perf_counter() - start < unbounded / 2
