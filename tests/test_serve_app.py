"""REST server: multi-adapter switching, OpenAI compatibility, bad input -> 4xx, batching.

Two real (tiny, random) PEFT LoRA adapters on the ``tiny_llama`` base are served
from one base model; their predictions must equal loading each adapter alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
import time
from pathlib import Path

import pytest

from ecomlm.io import write_json, write_yaml
from ecomlm.runs import RunSpec

EXAMPLES = [
    {"query": "red shoes", "product_title": "red leather shoes", "product_brand": "acme"},
    {"query": "phone case", "product_title": "blue cotton shirt"},
    {"query": "2 pack charger", "product_title": "phone charger 2 pack", "product_color": "black"},
]


def make_adapter_run(base: str, run_dir: Path, seed: int, task: str = "esci", **options) -> Path:
    """A run folder holding a real PEFT LoRA adapter (random, non-zero B) on ``base``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"])
    peft_model = get_peft_model(model, config)
    for name, param in peft_model.named_parameters():
        if "lora_" in name:  # B starts at zero: make the adapter change the outputs
            torch.nn.init.normal_(param, std=0.5)
    peft_model.save_pretrained(run_dir / "model" / "adapter")
    write_json(
        run_dir / "model" / "method.json",
        {
            "method": "lora",
            "task": task,
            "task_options": options,
            # float32: the switching check compares scores to 1e-5
            "config": {"base_model": base, "max_new_tokens": 8, "mixed_precision": "no"},
        },
    )
    spec = RunSpec(task=task, method="lora", task_options=options)
    write_yaml(run_dir / "config.yaml", dataclasses.asdict(spec))
    return run_dir


@pytest.fixture(scope="module")
def runs(tiny_llama, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serve-runs")
    return {
        "esci_a": make_adapter_run(tiny_llama, root / "esci_a", seed=1),
        "esci_b": make_adapter_run(tiny_llama, root / "esci_b", seed=2),
        "ner_a": make_adapter_run(tiny_llama, root / "ner_a", seed=3, task="queryner"),
    }


@pytest.fixture(scope="module")
def registry(runs):
    from ecomlm.serve.registry import ModelRegistry

    return ModelRegistry.from_args([str(p) for p in runs.values()])


@pytest.fixture(scope="module")
def client(registry):
    from fastapi.testclient import TestClient

    from ecomlm.serve.app import ServeSettings, create_app

    settings = ServeSettings(max_body_bytes=4096, max_inputs=8, max_tokens_limit=32)
    with TestClient(create_app(registry, settings), raise_server_exceptions=False) as c:
        yield c


def alone(run: Path, examples: list[dict]):
    """Predictions of the run loaded on its own by its method (LoraMethod, adapter merged)."""
    from ecomlm.methods import load_method
    from ecomlm.tasks.esci import EsciExample

    return load_method(run / "model").predict([EsciExample(**e) for e in examples])


def test_multi_adapter_switching_matches_each_adapter_alone(client, runs, tiny_llama):
    got = {}
    for name in ["esci_a", "esci_b", "esci_a"]:  # switch back and forth
        r = client.post("/v1/tasks/esci/predict", json={"model": name, "inputs": EXAMPLES})
        assert r.status_code == 200, r.text
        assert r.json()["model"] == name
        got.setdefault(name, []).append(r.json()["predictions"])
    assert got["esci_a"][0] == got["esci_a"][1]
    for name in ["esci_a", "esci_b"]:
        expected = alone(runs[name], EXAMPLES)
        for pred, exp in zip(got[name][0], expected, strict=True):
            assert pred["value"] == exp.value
            for label, p in exp.scores.items():
                assert pred["scores"][label] == pytest.approx(p, abs=1e-5)
            assert sum(pred["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    # the adapters really differ, so the comparison above can fail
    a = [s for p in got["esci_a"][0] for s in p["scores"].values()]
    b = [s for p in got["esci_b"][0] for s in p["scores"].values()]
    # 10x the 1e-5 tolerance the equality checks above use
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) > 1e-4


def test_merged_adapter_run_is_served_like_its_method(runs, tmp_path):
    from ecomlm.methods import load_method
    from ecomlm.methods.llm.merge import MergedLoraMethod, write_merged_run
    from ecomlm.serve.registry import ModelRegistry
    from ecomlm.tasks.esci import EsciExample

    config = MergedLoraMethod.Config(
        adapters=[str(runs["esci_a"]), str(runs["esci_b"])], mixed_precision="no"
    )
    merged = write_merged_run(config, tmp_path / "esci_ab")
    registry = ModelRegistry.from_args([str(merged), str(runs["esci_a"])])
    assert registry.get("esci_ab").base == registry.get("esci_a").base  # one shared base
    examples = [EsciExample(**e) for e in EXAMPLES]
    got = registry.predict("esci_ab", examples)
    expected = load_method(merged / "model").predict(examples)
    for g, e in zip(got, expected, strict=True):
        assert g.value == e.value
        assert g.scores == pytest.approx(e.scores, abs=1e-5)


def test_default_model_single_input_and_generation_task(client):
    r = client.post("/v1/tasks/esci/predict", json={"input": EXAMPLES[0]})
    assert r.status_code == 200 and r.json()["model"] == "esci_a"
    assert len(r.json()["predictions"]) == 1
    r = client.post("/v1/tasks/queryner/predict", json={"inputs": [{"tokens": ["red", "shoes"]}]})
    assert r.status_code == 200, r.text
    pred = r.json()["predictions"][0]
    assert set(pred) == {"value", "valid", "raw", "scores", "error"}
    assert isinstance(pred["raw"], str)


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"inputs": [{"query": 5, "product_title": "x"}]}, 422, "inputs.0.query"),
        ({"inputs": [{"product_title": "x"}]}, 422, "inputs.0.query"),
        ({"inputs": [{"query": "a", "product_title": "x", "price": 3}]}, 422, "inputs.0.price"),
        ({"inputs": []}, 422, "inputs"),
        ({"inputs": [EXAMPLES[0]] * 9}, 422, "inputs"),
        ({}, 422, "exactly one"),
        ({"inputs": EXAMPLES, "model": "nope"}, 404, "nope"),
        ({"inputs": EXAMPLES, "model": "ner_a"}, 404, "does not serve task 'esci'"),
        ({"inputs": "red shoes"}, 422, "inputs"),
    ],
)
def test_bad_predict_requests_get_clear_4xx(client, body, status, needle):
    r = client.post("/v1/tasks/esci/predict", json=body)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]["message"]


def test_protocol_level_errors_and_server_stays_up(client):
    r = client.post("/v1/tasks/nosuch/predict", json={"inputs": EXAMPLES})
    assert r.status_code == 404 and "unknown task 'nosuch'" in r.json()["error"]["message"]
    r = client.post("/v1/tasks/desc_gen/predict", json={"inputs": [{"title": "x"}]})
    assert r.status_code == 404
    big = {"inputs": [{"query": "x" * 5000, "product_title": "y"}]}
    r = client.post("/v1/tasks/esci/predict", json=big)
    assert r.status_code == 413 and "4096-byte limit" in r.json()["error"]["message"]
    r = client.post(
        "/v1/tasks/esci/predict",
        content=b'{"input": {"query": "caf\xe9", "product_title": "x"}}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400 and "UTF-8" in r.json()["error"]["message"]
    r = client.post(
        "/v1/tasks/esci/predict",
        content=b'{"input": {"query": ',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    assert client.get("/nowhere").status_code == 404
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert client.post("/v1/tasks/esci/predict", json={"input": EXAMPLES[0]}).status_code == 200


def test_chat_errors(client, tiny_llama):
    msgs = [{"role": "user", "content": "hi"}]
    r = client.post("/v1/chat/completions", json={"model": "nope", "messages": msgs})
    assert r.status_code == 404
    r = client.post("/v1/chat/completions", json={"model": "esci_a", "messages": []})
    assert r.status_code == 422 and "messages" in r.json()["error"]["message"]
    r = client.post(
        "/v1/chat/completions", json={"model": "esci_a", "messages": msgs, "max_tokens": 999}
    )
    assert r.status_code == 422 and "max_tokens" in r.json()["error"]["message"]
    r = client.post("/v1/chat/completions", json={"model": "esci_a", "messages": [{"role": "x"}]})
    assert r.status_code == 422 and "messages.0.role" in r.json()["error"]["message"]
    ids = {m["id"] for m in client.get("/v1/models").json()["data"]}
    assert ids == {"esci_a", "esci_b", "ner_a", tiny_llama}


def test_request_timeout_gives_504_and_server_recovers(registry):
    from fastapi.testclient import TestClient

    from ecomlm.serve.app import ServeSettings, create_app

    # The batcher waits max_wait_ms for company before running: longer than the timeout.
    settings = ServeSettings(request_timeout_s=0.01, max_wait_ms=200)
    with TestClient(create_app(registry, settings)) as c:
        r = c.post("/v1/tasks/esci/predict", json={"input": EXAMPLES[0]})
        assert r.status_code == 504 and "timed out" in r.json()["error"]["message"]
        assert c.get("/health").status_code == 200


def test_request_log_is_one_json_line(client, caplog):
    import json
    import logging

    with caplog.at_level(logging.INFO, logger="ecomlm.serve"):
        client.post("/v1/tasks/esci/predict", json={"model": "esci_b", "input": EXAMPLES[0]})
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "ecomlm.serve"]
    (rec,) = [r for r in records if r.get("event") == "request"]
    assert rec["path"] == "/v1/tasks/esci/predict" and rec["status"] == 200
    assert rec["model"] == "esci_b" and rec["latency_ms"] > 0


# ------------------------------------------------------------------ real server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(registry):
    import uvicorn

    from ecomlm.serve.app import ServeSettings, create_app

    app = create_app(registry, ServeSettings(max_batch_size=8, max_wait_ms=20))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        assert time.time() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(10)


def test_openai_client_against_live_server(live_server, runs, tiny_llama):
    import openai

    from ecomlm.methods.llm.causal_lm import generate, load_llm, prompt_text

    url, _ = live_server
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    ids = {m.id for m in client.models.list().data}
    assert {"esci_a", "esci_b", tiny_llama} <= ids
    messages = [{"role": "user", "content": "red shoes"}]
    for model_id, adapter in [("esci_b", runs["esci_b"]), (tiny_llama, None)]:
        resp = client.chat.completions.create(model=model_id, messages=messages, max_tokens=6)
        choice = resp.choices[0]
        model, tok = load_llm(
            tiny_llama, adapter=str(adapter / "model" / "adapter") if adapter else None
        )
        expected = generate(model, tok, [prompt_text(tok, messages)], max_new_tokens=6)[0]
        assert choice.message.content == expected
        assert choice.message.role == "assistant"
        assert choice.finish_reason in ("stop", "length")
        assert resp.usage.prompt_tokens > 0
        assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    with pytest.raises(openai.NotFoundError, match="unknown model"):
        client.chat.completions.create(model="nope", messages=messages)


def test_concurrent_requests_are_micro_batched_and_correct(live_server):
    import httpx

    url, app = live_server
    bodies = [{"model": "esci_a", "input": EXAMPLES[i % 3]} for i in range(12)]
    bodies += [{"model": "esci_b", "input": EXAMPLES[i % 3]} for i in range(12)]

    async def fire():
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            return await asyncio.gather(*[c.post("/v1/tasks/esci/predict", json=b) for b in bodies])

    before = app.state.batcher.stats.batches
    responses = asyncio.run(fire())
    assert [r.status_code for r in responses] == [200] * len(bodies)
    batches = app.state.batcher.stats.batches - before
    assert batches < len(bodies)  # requests were grouped
    with httpx.Client(base_url=url) as c:  # same answer as one request at a time
        for body, r in zip(bodies[::5], responses[::5], strict=True):
            single = c.post("/v1/tasks/esci/predict", json=body).json()
            got = r.json()["predictions"][0]["scores"]
            for label, p in single["predictions"][0]["scores"].items():
                assert got[label] == pytest.approx(p, abs=1e-5)


def test_bad_input_over_real_http_keeps_server_up(live_server):
    import httpx

    url, _ = live_server
    with httpx.Client(base_url=url, timeout=30) as c:
        big = b'{"inputs": [{"query": "' + b"x" * (2 << 20) + b'", "product_title": "y"}]}'
        r = c.post("/v1/tasks/esci/predict", content=big)
        assert r.status_code == 413
    with httpx.Client(base_url=url, timeout=30) as c:
        r = c.post("/v1/tasks/esci/predict", content=b'{"input": {"query": "\xff\xfe"}}')
        assert r.status_code == 400 and "UTF-8" in r.json()["error"]["message"]
        r = c.post("/v1/tasks/esci/predict", json={"inputs": [{"query": ["a"]}]})
        assert r.status_code == 422
        assert r.json()["error"]["param"] == "inputs.0.query"
        assert c.get("/health").json()["status"] == "ok"
