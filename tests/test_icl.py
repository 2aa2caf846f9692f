"""ICL over a real OpenAI-compatible HTTP server on 127.0.0.1 (tiny model, fault modes)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from icl_server import GARBAGE, ChatServer, free_port, start_uvicorn, stop_uvicorn

from ecomlm.methods.icl.backends import EndpointError, estimate_prompt_tokens
from ecomlm.methods.icl.demos import DemoSelector, example_text
from ecomlm.methods.icl.method import IclMethod, build_messages, fit_demos
from ecomlm.methods.llm.causal_lm import generate, load_llm, prompt_text
from ecomlm.tasks import get_task
from ecomlm.tasks.esci import EsciExample

LABELS = ("Exact", "Substitute", "Complement", "Irrelevant")
POOL_ROWS = [
    ("red running shoes", "Nike red running shoes for men", "Exact"),
    ("red running shoes", "Adidas blue running shoes", "Substitute"),
    ("red running shoes", "Running shoe laces 2 pack", "Complement"),
    ("red running shoes", "Stainless steel kitchen knife", "Irrelevant"),
    ("iphone charger", "Apple USB-C charger for iPhone 15", "Exact"),
    ("iphone charger", "Samsung fast charger", "Substitute"),
    ("iphone charger", "iPhone 15 silicone case", "Complement"),
    ("iphone charger", "Cotton bath towel", "Irrelevant"),
    ("wooden dining table", "Solid oak dining table for six", "Exact"),
    ("wooden dining table", "Glass dining table", "Substitute"),
]
TEST_ROWS = [
    ("running shoes red size 10", "Nike red running shoes", "Exact"),
    ("usb c charger for iphone", "Anker iPhone charger", "Exact"),
    ("oak table for dining room", "Pine dining table", "Substitute"),
    ("black leather wallet", "Leather belt", "Complement"),
]


def examples(rows, prefix):
    return [
        EsciExample(query=q, product_title=t, label=y, example_id=f"{prefix}{i}")
        for i, (q, t, y) in enumerate(rows)
    ]


@pytest.fixture(scope="module")
def task():
    return get_task("esci")


@pytest.fixture(scope="module")
def pool():
    return examples(POOL_ROWS, "p")


@pytest.fixture(scope="module")
def tests_set():
    return examples(TEST_ROWS, "t")


@pytest.fixture(scope="module")
def server(tiny_llama):
    srv = ChatServer(tiny_llama).start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _fresh_server(request):
    if "server" in request.fixturenames:
        request.getfixturevalue("server").reset()


def remote(task, server, tmp_path, **options):
    config = IclMethod.Config(
        backend="openai",
        endpoint=server.base_url,
        model=server.model_name,
        cache_dir=str(tmp_path / "cache"),
        retry_backoff=0.01,
        **{"k": 2, **options},
    )
    return IclMethod(task, config)


def test_answers_are_the_servers_generations_and_rerun_hits_cache(
    task, pool, tests_set, server, tiny_llama, tmp_path
):
    method = remote(task, server, tmp_path, k=2, select="balanced", concurrency=3)
    method.fit(pool)
    preds = method.predict(tests_set)
    assert server.requests == len(tests_set)

    # Chat structure: system, (user, assistant) per demonstration, then the test input.
    body = server.bodies[0]
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert {m["content"] for m in body["messages"] if m["role"] == "assistant"} <= set(LABELS)
    assert body["max_tokens"] == 8 and body["temperature"] == 0

    # The answers are the tiny model's greedy generations for exactly those prompts.
    messages, used = method.prompts(tests_set)
    assert used == [2] * len(tests_set)
    model, tok = load_llm(tiny_llama)
    expected = generate(model, tok, [prompt_text(tok, m) for m in messages], max_new_tokens=8)
    assert [p.raw for p in preds] == expected
    cost = method.extra_cost
    assert cost["requests_sent"] == 4 and cost["cache_hits"] == 0 and cost["failures"] == 0
    assert cost["prompt_tokens_sent"] > 0 and not cost["tokens_estimated"]

    # A fresh method with the same config re-runs for free: no request reaches the server.
    again = remote(task, server, tmp_path, k=2, select="balanced", concurrency=3).fit(pool)
    preds2 = again.predict(tests_set)
    assert server.requests == len(tests_set)
    assert [p.raw for p in preds2] == [p.raw for p in preds]
    assert again.extra_cost["cache_hits"] == 4 and again.extra_cost["requests_sent"] == 0
    assert again.extra_cost["prompt_tokens_sent"] == 0


def test_retries_500_and_429_with_retry_after(task, pool, tests_set, server, tmp_path):
    server.faults.extend(["500", "429"])
    server.retry_after = "1"
    method = remote(task, server, tmp_path, concurrency=1).fit(pool)
    start = time.monotonic()
    preds = method.predict(tests_set[:2])
    elapsed = time.monotonic() - start
    assert server.requests == 4  # 2 examples + 1 retry after the 500 + 1 after the 429
    assert elapsed >= 0.9  # Retry-After: 1 was honoured
    assert all(p.raw is not None for p in preds)
    cost = method.extra_cost
    assert cost["retries"] == 2 and cost["failures"] == 0 and cost["requests_sent"] == 4


def test_persistent_5xx_gives_up_without_crashing(task, pool, tests_set, server, tmp_path):
    server.mode = "500"
    method = remote(task, server, tmp_path, max_retries=2, concurrency=2).fit(pool)
    preds = method.predict(tests_set[:2])
    assert server.requests == 6  # 1 + 2 retries each
    assert all(not p.valid and p.raw is None for p in preds)
    assert method.extra_cost["failure_kinds"] == {"http_500": 2}
    assert task.score(tests_set[:2], preds)["invalid_rate"] == 1.0


def test_garbage_answers_are_counted_invalid_and_scored_wrong(
    task, pool, tests_set, server, tmp_path
):
    # Correct label for the first two examples, garbage for the rest.
    gold = {ex.query: ex.label for ex in tests_set[:2]}

    def responder(messages):
        query = messages[-1]["content"].split("Query: ")[1].split("\n")[0]
        return gold.get(query, GARBAGE)

    server.responder = responder
    method = remote(task, server, tmp_path, k=1).fit(pool)
    preds = method.predict(tests_set)
    assert [p.valid for p in preds] == [True, True, False, False]
    metrics = task.score(tests_set, preds)
    assert metrics["accuracy"] == 0.5 and metrics["invalid_rate"] == 0.5
    assert method.extra_cost["invalid_answers"] == 2 and method.extra_cost["failures"] == 0


def test_missing_usage_falls_back_to_token_estimate(task, pool, tests_set, server, tmp_path):
    server.mode = "no_usage"
    method = remote(task, server, tmp_path, price_input_per_1k=1.0, price_output_per_1k=2.0)
    method.fit(pool).predict(tests_set[:1])
    cost = method.extra_cost
    messages, _ = method.prompts(tests_set[:1])
    assert cost["tokens_estimated"] and cost["prompt_tokens_sent"] == estimate_prompt_tokens(
        messages[0]
    )
    expected = cost["prompt_tokens_sent"] / 1000 + 2 * cost["completion_tokens"] / 1000
    assert cost["estimated_cost"] == pytest.approx(expected, abs=1e-6)


def test_timeouts_respect_the_time_budget(task, pool, tests_set, server, tmp_path):
    server.mode, server.slow_seconds = "slow", 2.0
    method = remote(
        task, server, tmp_path, timeout=0.3, max_retries=10, max_seconds=1.0, concurrency=2
    ).fit(pool)
    start = time.monotonic()
    preds = method.predict(tests_set)
    assert time.monotonic() - start < 2.0  # the run ends near max_seconds, not after retries
    assert all(not p.valid for p in preds)
    kinds = method.extra_cost["failure_kinds"]
    assert set(kinds) <= {"timeout", "budget_max_seconds"} and sum(kinds.values()) == 4
    assert "budget_max_seconds" in kinds


def test_request_budget_marks_the_rest_invalid(task, pool, tests_set, server, tmp_path):
    method = remote(task, server, tmp_path, max_requests=2, concurrency=1).fit(pool)
    preds = method.predict(tests_set)
    assert server.requests == 2
    assert sum(p.raw is not None for p in preds) == 2
    assert method.extra_cost["failure_kinds"] == {"budget_max_requests": 2}
    unanswered = [p for p in preds if p.raw is None]
    assert unanswered and all(not p.valid and p.error for p in unanswered)


def test_wrong_model_name_is_a_clear_error_and_key_is_never_saved(
    task, pool, tests_set, server, tmp_path, monkeypatch
):
    monkeypatch.setenv("ICL_TEST_KEY", "sk-test-secret-123")
    method = remote(task, server, tmp_path, api_key_env="ICL_TEST_KEY").fit(pool)
    method.predict(tests_set[:1])
    assert server.auth == "Bearer sk-test-secret-123"
    method.save(tmp_path / "saved")
    for f in (tmp_path / "saved").iterdir():
        assert "sk-test-secret" not in f.read_text(errors="ignore")

    bad = IclMethod(task, IclMethod.Config(**{**method.config.__dict__, "model": "nope"}))
    with pytest.raises(EndpointError, match="404.*'nope'"):
        bad.fit(pool).predict(tests_set[:1])


def test_balanced_selection_covers_every_label(task, pool, tests_set):
    selector = DemoSelector(task, pool, k=4, strategy="balanced", seed=3)
    for picks in selector.select(tests_set):
        assert sorted(task.gold(pool[i]) for i in picks) == sorted(LABELS)
    for picks in DemoSelector(task, pool, k=2, strategy="balanced").select(tests_set):
        assert len({task.gold(pool[i]) for i in picks}) == 2
    # Deterministic per (seed, example), whatever the example's position.
    a = selector.select(tests_set)
    b = selector.select(tests_set[::-1])[::-1]
    assert a == b
    with pytest.raises(ValueError, match="balanced"):
        IclMethod(get_task("queryner"), IclMethod.Config(select="balanced"))


def test_similar_selection_picks_nearest_with_minilm(task, pool, tests_set):
    selector = DemoSelector(task, pool, k=3, strategy="similar")
    picks = selector.select(tests_set[:3])
    # Semantic neighbours: shoes -> the exact shoe demo, charger -> the exact charger demo.
    assert picks[0][0] == 0 and picks[1][0] == 4 and picks[2][0] in (8, 9)
    # The order is cosine similarity, computed independently here.
    emb = selector.embedder().encode([example_text(task, ex) for ex in tests_set[:1]])[0]
    sims = selector.embeddings @ emb
    assert list(picks[0]) == list(np.argsort(-sims)[:3])
    # A test example that is itself in the pool is never its own demonstration.
    assert 0 not in selector.select([pool[0]])[0]


def test_prompt_guard_drops_farthest_demos_first(task, pool, tests_set):
    demos = pool[:4]
    sizes = [
        estimate_prompt_tokens(build_messages(task, demos[:n], tests_set[0])) for n in range(5)
    ]
    limit = (sizes[2] + sizes[3]) // 2  # room for exactly 2 demonstrations
    messages, used = fit_demos(task, demos, tests_set[0], estimate_prompt_tokens, limit)
    assert used == 2 and messages == build_messages(task, demos[:2], tests_set[0])
    # nearest_last: highest-priority demonstration sits right before the test input
    messages, used = fit_demos(
        task, demos, tests_set[0], estimate_prompt_tokens, limit, nearest_last=True
    )
    assert messages == build_messages(task, [demos[1], demos[0]], tests_set[0])
    # Not even zero demonstrations fit: the bare prompt is still sent.
    assert fit_demos(task, demos, tests_set[0], estimate_prompt_tokens, 1)[1] == 0


def test_local_backend_matches_server_and_guard_uses_model_context(
    task, pool, tests_set, server, tiny_llama, tmp_path
):
    # unconstrained: the server decodes freely, and both paths must agree token for token
    config = dict(
        backend="local", model=tiny_llama, select="random", cache_dir="off", constrained=False
    )
    local = IclMethod(task, IclMethod.Config(k=2, **config)).fit(pool)
    preds = local.predict(tests_set)
    over_http = remote(task, server, tmp_path, k=2, select="random").fit(pool)
    assert [p.raw for p in preds] == [p.raw for p in over_http.predict(tests_set)]
    assert local.extra_cost["demos_used_mean"] == 2 and local.extra_cost["requests_sent"] == 4

    # Each demonstration is ~310 tiny-tokenizer tokens; 3 of them overflow the tiny
    # model's 1024-token context, so the guard keeps 2 and records it.
    tight = IclMethod(task, IclMethod.Config(k=3, **config)).fit(pool)
    messages, used = tight.prompts(tests_set)
    assert used == [2] * 4
    assert all(tight.backend().count_tokens(m) <= 1024 - 8 for m in messages)
    tight.predict(tests_set)
    assert tight.extra_cost["demos_used_hist"] == {"2": 4}
    assert [d["demos_used"] for d in tight.details] == [2] * 4


def test_save_load_roundtrip_keeps_pool_and_embeddings(task, pool, tests_set, tmp_path):
    method = IclMethod(task, IclMethod.Config(k=2, select="similar", cache_dir="off")).fit(pool)
    method.save(tmp_path / "m")
    header = json.loads((tmp_path / "m" / "method.json").read_text())
    assert header["method"] == "icl" and header["config"]["select"] == "similar"
    loaded = IclMethod.load(tmp_path / "m")
    assert loaded.pool == method.pool
    np.testing.assert_array_equal(loaded.selector.embeddings, method.selector.embeddings)
    assert loaded.selector.select(tests_set) == method.selector.select(tests_set)


def test_acceptance_run_record_with_invalid_rate_tokens_and_cost(
    task, pool, tests_set, server, tmp_path
):
    from ecomlm.runs import RunSpec, execute_run

    spec = RunSpec(
        task="esci",
        method="icl",
        method_config={
            "backend": "openai",
            "endpoint": server.base_url,
            "model": server.model_name,
            "k": 4,
            "select": "similar",
            "cache_dir": str(tmp_path / "cache"),
            "price_input_per_1k": 0.01,
            "price_output_per_1k": 0.03,
        },
    )
    splits = {"train": pool, "dev": [], "test": tests_set}
    metrics = execute_run(spec, tmp_path / "run", splits=splits)
    run = tmp_path / "run"
    written = json.loads((run / "metrics.json").read_text())
    assert written["n"] == 4 and written["accuracy"] == metrics["accuracy"]
    assert "invalid_rate" in written and "f1_macro" in written
    cost = json.loads((run / "cost.json").read_text())
    assert cost["requests_sent"] == server.requests == 4
    assert cost["prompt_tokens_sent"] > 0 and cost["demos_used_mean"] == 4
    assert cost["invalid_rate"] == written["invalid_rate"]
    assert cost["estimated_cost"] == pytest.approx(
        cost["prompt_tokens_sent"] * 1e-5 + cost["completion_tokens"] * 3e-5, abs=1e-6
    )
    rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["raw"] is not None for r in rows)
    assert (run / "model" / "embeddings.npy").exists()


def test_cli_train_acceptance_command(server, tmp_path):
    from typer.testing import CliRunner

    from ecomlm.cli import app

    out = tmp_path / "run"
    args = ["train", "--method", "icl", "--task", "esci", "--k", "4", "--select", "similar"]
    args += ["--endpoint", server.base_url, "--model", server.model_name, "--out", str(out)]
    args += ["--train-size", "40", "--max-eval", "3", "--cache-dir", str(tmp_path / "cache")]
    args += ["--price-input-per-1k", "0.5"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 3 and {"accuracy", "f1_macro", "invalid_rate"} <= set(metrics)
    cost = json.loads((out / "cost.json").read_text())
    assert cost["icl_backend"] == "openai" and cost["requests_sent"] == server.requests == 3
    assert cost["demos_used_mean"] == 4 and cost["prompt_tokens_sent"] > 0
    assert cost["estimated_cost"] == pytest.approx(cost["prompt_tokens_sent"] / 1000 * 0.5)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"backend": "openai"}, "needs endpoint"),
        ({"backend": "local", "endpoint": "http://x/v1"}, "only used by backend='openai'"),
        ({"select": "nearest"}, "choose one of random, balanced, similar"),
        ({"k": -1}, "k=-1"),
        ({"backend": "local", "temperature": 0.7}, "greedily"),
    ],
)
def test_config_errors_name_the_option(task, options, message):
    with pytest.raises(ValueError, match=message):
        IclMethod(task, IclMethod.Config(**options))


def test_icl_against_the_projects_own_server(task, pool, tests_set, server, tiny_llama, tmp_path):
    """ecomlm's serve app is an OpenAI-compatible endpoint too: same model, same answers."""
    serve_app = pytest.importorskip("ecomlm.serve.app")
    from ecomlm.serve.registry import ModelRegistry

    registry = ModelRegistry.from_args(bases=[tiny_llama])
    port = free_port()
    uv, thread = start_uvicorn(serve_app.create_app(registry), port)
    try:
        config = dict(model=tiny_llama, k=2, select="random", cache_dir="off", retry_backoff=0.01)
        ours = IclMethod(
            task, IclMethod.Config(endpoint=f"http://127.0.0.1:{port}/v1", **config)
        ).fit(pool)
        preds = ours.predict(tests_set)
    finally:
        stop_uvicorn(uv, thread)
    assert ours.extra_cost["failures"] == 0 and all(p.raw is not None for p in preds)
    reference = IclMethod(
        task, IclMethod.Config(endpoint=server.base_url, **{**config, "model": server.model_name})
    ).fit(pool)
    assert [p.raw for p in preds] == [p.raw for p in reference.predict(tests_set)]


@pytest.mark.parametrize("task_name", ["queryner", "review_summ", "desc_gen"])
def test_other_tasks_run_end_to_end_locally(task_name, tiny_llama):
    from ecomlm.data import load_splits

    other = get_task(task_name)
    splits = load_splits(task_name, "synthetic")
    config = IclMethod.Config(
        backend="local", model=tiny_llama, k=1, select="similar", cache_dir="off", max_new_tokens=8
    )
    method = IclMethod(other, config).fit(splits["train"][:6])
    preds = method.predict(splits["test"][:2])
    assert len(preds) == 2 and method.extra_cost["requests_sent"] == 2
    metrics = other.score(splits["test"][:2], preds)
    assert other.main_metric in metrics and "invalid_rate" in metrics


def test_guided_decoding_fields_are_sent_for_closed_output_tasks(task, pool, tests_set, server,
                                                                 tmp_path):  # fmt: skip
    """vLLM-style servers get ``guided_choice`` (labels); answers are marked guided."""
    method = remote(task, server, tmp_path, k=0).fit(pool)
    method.predict(tests_set)
    assert all(b["guided_choice"] == list(LABELS) for b in server.bodies)
    assert method.extra_cost["guided_decoding"] == "server"
    assert method.extra_cost["guided_answers"] == len(tests_set)


def test_server_rejecting_guided_fields_falls_back_to_parsing(task, pool, tests_set, server,
                                                              tmp_path):  # fmt: skip
    """A server without guided decoding answers 400 once; every later request goes plain,
    every example still gets the server's answer (parsed, invalid counted)."""
    server.reject_guided = True
    method = remote(task, server, tmp_path, k=0, concurrency=1).fit(pool)
    preds = method.predict(tests_set)
    cost = method.extra_cost
    assert cost["guided_decoding"] == "rejected: answers parsed"
    assert cost["failures"] == 0 and cost["guided_answers"] == 0
    assert server.requests == len(tests_set) + 1  # the one rejected guided request
    assert sum("guided_choice" in b for b in server.bodies) == 1
    assert all(p.raw is not None for p in preds)


def test_guided_off_sends_plain_requests(task, pool, tests_set, server, tmp_path):
    method = remote(task, server, tmp_path, k=0, guided=False).fit(pool)
    method.predict(tests_set)
    assert not any("guided_choice" in b for b in server.bodies)
    assert method.extra_cost["guided_decoding"] == "off"
