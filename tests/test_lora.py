"""LoRA instruction tuning on a tiny random Llama: masking, batches, mixing, training, I/O."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from ecomlm.methods.llm import lora_data
from ecomlm.methods.llm import train_lora as lora_mod
from ecomlm.methods.llm.causal_lm import end_of_turn_id, load_llm, prompt_text, score_labels
from ecomlm.methods.llm.lora import LoraMethod, adapter_dir
from ecomlm.tasks.esci import EsciExample, EsciTask
from ecomlm.tasks.queryner import NerExample, QueryNerTask

LABELS = ("Exact", "Substitute", "Complement", "Irrelevant")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def esci_examples(n: int = 16) -> list[EsciExample]:
    titles = ["red cotton shirt", "blue leather shoes", "phone case 2 pack", "black charger"]
    return [
        EsciExample(
            query=titles[i % 4].split()[0] + " " + titles[(i // 4) % 4].split()[-1],
            product_title=titles[i % 4],
            product_brand="brand" if i % 2 else "",
            label=LABELS[i % 4],
            example_id=str(i),
        )
        for i in range(n)
    ]


def ner_examples() -> list[NerExample]:
    return [
        NerExample(["red", "shoes"], ["B-color", "B-core_product_type"], "a"),
        NerExample(
            ["leather", "phone", "case"],
            ["B-material", "B-core_product_type", "I-core_product_type"],
            "b",
        ),
    ]


def config(tiny_llama: str, tmp_path, **kw) -> LoraMethod.Config:
    base = dict(
        base_model=tiny_llama, r=4, alpha=8, dropout=0.0, lr=2e-2, batch_size=4,
        max_length=1024, max_steps=4, warmup_ratio=0.0, eval_batch_size=8,
        work_dir=str(tmp_path / "work"), log_every=0, mixed_precision="no",
    )  # fmt: skip
    base.update(kw)
    return LoraMethod.Config(**base)


# ------------------------------------------------------------------ data


def test_answer_only_labels_and_positions(tiny_llama):
    _, tok = load_llm(tiny_llama)
    task, ex = EsciTask(), esci_examples(1)[0]
    enc = lora_data.encode_example(tok, task, ex, max_length=1024)
    prompt = tok(prompt_text(tok, task.messages(ex)), add_special_tokens=False).input_ids
    assert enc.input_ids[: enc.n_prompt] == prompt
    labels = enc.labels
    assert all(x == -100 for x in labels[: enc.n_prompt])
    answer = labels[enc.n_prompt :]
    assert answer[-1] == end_of_turn_id(tok) and tok.decode(answer[:-1]) == "Exact"

    batch = lora_data.collate(
        [enc, lora_data.encode_example(tok, task, esci_examples(2)[1], 1024)], 0
    )
    flat = batch["input_ids"].reshape(-1)
    # the hidden state at each position predicts the next token: exactly the answer tokens
    assert torch.equal(flat[batch["positions"] + 1], batch["targets"])
    n_answer = sum(len(e) - e.n_prompt for e in [enc]) + len(task.reference(esci_examples(2)[1]))
    assert batch["targets"].numel() >= 2 and batch["targets"].numel() <= n_answer + 2


def test_truncation_keeps_answer_and_assistant_header(tiny_llama):
    _, tok = load_llm(tiny_llama)
    task = EsciTask()
    ex = esci_examples(1)[0]
    ex.product_description = "great quality price " * 200
    enc = lora_data.encode_example(tok, task, ex, max_length=64)
    full = tok(prompt_text(tok, task.messages(ex)), add_special_tokens=False).input_ids
    assert len(enc) <= 64
    assert enc.input_ids[enc.n_prompt - 4 : enc.n_prompt] == full[-4:]  # "assistant\n" header
    assert tok.decode(enc.input_ids[enc.n_prompt : -1]) == "Exact"


def test_length_batches_cover_all_with_little_padding():
    lengths = [(i * 37) % 200 + 5 for i in range(500)]
    batches = lora_data.length_batches(lengths, batch_size=8, batch_tokens=600, seed=1)
    assert sorted(i for b in batches for i in b) == list(range(500))
    assert all(
        len(b) <= 8 and max(lengths[i] for i in b) * len(b) <= 600 or len(b) == 1 for b in batches
    )
    assert lora_data.padding_share(batches, lengths) < 0.05
    random_batches = [list(range(i, min(i + 8, 500))) for i in range(0, 500, 8)]
    assert lora_data.padding_share(random_batches, lengths) > 0.3
    assert batches == lora_data.length_batches(lengths, 8, 600, seed=1)  # seeded


def test_mixed_sampling_follows_temperature():
    groups = {"a": list(range(900)), "b": list(range(100))}
    w1 = lora_data.task_weights({"a": 900, "b": 100}, 1.0)
    w_inf = lora_data.task_weights({"a": 900, "b": 100}, 1e9)
    assert w1["a"] == pytest.approx(0.9) and w_inf["a"] == pytest.approx(0.5)
    assert lora_data.task_weights({"a": 900, "b": 100}, 2.0)["a"] == pytest.approx(0.75)
    drawn = lora_data.mixed_sample({k: [(k, x) for x in v] for k, v in groups.items()}, 2.0, seed=0)
    counts = Counter(name for name, _ in drawn)
    assert len(drawn) == 1000 and abs(counts["a"] / 1000 - 0.75) < 0.05
    # a task repeats an example only after all of its examples were drawn
    b_items = [x for name, x in drawn if name == "b"]
    assert len(set(b_items[:100])) == min(100, len(b_items))
    with pytest.raises(ValueError, match="mix_temperature"):
        lora_data.task_weights({"a": 1}, 0)


def test_mixed_task_fit_uses_both_tasks(tiny_llama, tmp_path, monkeypatch):
    import ecomlm.data

    calls = []

    def fake_load_splits(task, source="synthetic", seed=0):
        calls.append((task, source))
        return {"train": ner_examples() * 10, "dev": [], "test": []}

    monkeypatch.setattr(ecomlm.data, "load_splits", fake_load_splits, raising=False)
    monkeypatch.setattr(
        ecomlm.data, "subsample", lambda ex, n, seed=0, task=None: ex[:n], raising=False
    )
    method = LoraMethod(
        EsciTask(), config(tiny_llama, tmp_path, mix_tasks={"queryner": "synthetic"})
    )
    method.fit(esci_examples(8))
    assert calls == [("queryner", "synthetic")]
    assert method.extra_cost["train_examples_per_task"] == {"esci": 8, "queryner": 8}


# ------------------------------------------------------------------ training


def test_training_lowers_answer_loss(tiny_llama, tmp_path):
    train = esci_examples(16)
    zero = LoraMethod(EsciTask(), config(tiny_llama, tmp_path, max_steps=0)).fit(train)
    before = zero.loss(train)
    tuned = LoraMethod(EsciTask(), config(tiny_llama, tmp_path, max_steps=12)).fit(train)
    after = tuned.loss(train)
    # a random tiny model's logits are bounded (|embedding| ~ 0.1): ~0.3 nats is near the floor
    assert after < before - 0.15, (before, after)
    assert tuned.extra_cost["train_steps"] == 12 and tuned.extra_cost["train_tokens"] > 0
    assert not (tmp_path / "work" / "checkpoint").exists()  # removed once training finished


def test_zero_shot_equals_base_model(tiny_llama, tmp_path):
    task, examples = EsciTask(), esci_examples(4)
    method = LoraMethod(task, config(tiny_llama, tmp_path, epochs=0, max_steps=None)).fit(examples)
    preds = method.predict(examples)
    model, tok = load_llm(tiny_llama)
    prompts = [prompt_text(tok, task.messages(ex)) for ex in examples]
    direct = score_labels(model, tok, prompts, list(task.labels), normalize=False)
    for p, d in zip(preds, direct, strict=True):  # label_score="sum": sequence log-probs
        assert p.scores == pytest.approx(d, abs=1e-5)
    mean = LoraMethod(task, config(tiny_llama, tmp_path, epochs=0, max_steps=None,
                                   label_score="mean")).fit(examples)  # fmt: skip
    averaged = score_labels(model, tok, prompts, list(task.labels))
    for p, d in zip(mean.predict(examples), averaged, strict=True):
        assert p.scores == pytest.approx(d, abs=1e-5)
    with pytest.raises(ValueError, match="label_score must be 'sum' or 'mean'"):
        LoraMethod(task, config(tiny_llama, tmp_path, label_score="max"))


def test_label_scoring_and_generation_predictions(tiny_llama, tmp_path):
    task, examples = EsciTask(), esci_examples(6)
    method = LoraMethod(task, config(tiny_llama, tmp_path, max_steps=2)).fit(examples)
    preds = method.predict(examples)
    for p in preds:
        assert p.valid and p.value in LABELS
        assert sum(p.scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert p.value == max(p.scores, key=p.scores.get)
    assert task.score(examples, preds)["invalid_rate"] == 0.0
    method.config.esci_inference = "generate"
    method.config.max_new_tokens = 4
    generated = method.predict(examples)
    assert len(generated) == 6 and all(p.scores is None for p in generated)


def test_adapter_save_load_gives_identical_predictions(tiny_llama, tmp_path):
    from ecomlm.methods import load_method

    task, examples = QueryNerTask(), ner_examples() * 4
    cfg = config(tiny_llama, tmp_path, max_steps=3, max_new_tokens=6)
    method = LoraMethod(task, cfg).fit(examples)
    before = method.predict(examples[:2])
    method.save(tmp_path / "model")
    assert (tmp_path / "model" / "adapter" / "adapter_config.json").is_file()
    assert (tmp_path / "model" / "adapter" / "adapter_model.safetensors").is_file()
    assert (
        adapter_dir(tmp_path) == adapter_dir(tmp_path / "model") == tmp_path / "model" / "adapter"
    )
    loaded = load_method(tmp_path / "model")
    assert isinstance(loaded, LoraMethod)
    assert [p.raw for p in loaded.predict(examples[:2])] == [p.raw for p in before]
    # esci scores through the same adapter via adapter_path (how the study reuses adapters)
    reuse = LoraMethod(
        task, config(tiny_llama, tmp_path, adapter_path=str(tmp_path), max_new_tokens=6)
    )
    reuse.fit([])
    assert [p.raw for p in reuse.predict(examples[:2])] == [p.raw for p in before]


def test_resume_continues_from_checkpoint(tiny_llama, tmp_path, monkeypatch):
    task, train = EsciTask(), esci_examples(16)
    cfg = dict(max_steps=6, checkpoint_every=3)
    full = LoraMethod(task, config(tiny_llama, tmp_path / "a", **cfg)).fit(train)

    real_save = lora_mod.save_checkpoint

    def crash_after_save(*args, **kw):
        real_save(*args, **kw)
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(lora_mod, "save_checkpoint", crash_after_save)
    with pytest.raises(KeyboardInterrupt):
        LoraMethod(task, config(tiny_llama, tmp_path / "b", **cfg)).fit(train)
    assert (tmp_path / "b" / "work" / "checkpoint" / "trainer_state.pt").is_file()
    monkeypatch.setattr(lora_mod, "save_checkpoint", real_save)

    resumed = LoraMethod(task, config(tiny_llama, tmp_path / "b", **cfg)).fit(train)
    assert resumed.resumed_from == 3 and resumed.resumed_seconds > 0
    assert [h["step"] for h in resumed.history] == [1, 2, 3, 4, 5, 6]  # the whole history
    assert [h["loss"] for h in resumed.history] == pytest.approx(
        [h["loss"] for h in full.history], rel=1e-4
    )
    # the record covers the whole training: examples seen before the crash count, and
    # its seconds include the time trained before it (the budget's clock too)
    done, again = full.training_record, resumed.training_record
    assert again["examples_seen"] == done["examples_seen"] and again["steps"] == 6
    assert again["train_seconds"] >= resumed.resumed_seconds
    assert resumed.extra_cost["train_tokens"] == full.extra_cost["train_tokens"]
    # a different config does not pick up a foreign checkpoint
    other = LoraMethod(task, config(tiny_llama, tmp_path / "b", max_steps=2, lr=1e-3)).fit(train)
    assert other.resumed_from == 0


def test_a_clock_stop_keeps_the_checkpoint_and_a_raised_budget_continues(tiny_llama, tmp_path):
    task, train = EsciTask(), esci_examples(16)
    cfg = dict(max_steps=6, checkpoint_every=3)
    full = LoraMethod(task, config(tiny_llama, tmp_path / "a", **cfg)).fit(train)
    stopped = LoraMethod(task, config(tiny_llama, tmp_path / "b", max_seconds=1e-9, **cfg))
    stopped.fit(train)  # out of time after its first step, 5 steps left
    assert stopped.training_record["stop_reason"] == "budget"
    assert stopped.training_record["steps"] == 1
    kept = tmp_path / "b" / "work" / "checkpoint" / "trainer_state.pt"
    assert kept.is_file()
    longer = LoraMethod(task, config(tiny_llama, tmp_path / "b", max_seconds=3600, **cfg))
    longer.fit(train)  # the budget raised: the same fit goes on from step 1
    assert longer.resumed_from == 1 and longer.training_record["steps"] == 6
    assert [h["loss"] for h in longer.history] == pytest.approx(
        [h["loss"] for h in full.history], rel=1e-4
    )
    assert not kept.exists()  # finished: dropped


def test_config_errors_are_clear(tiny_llama):
    from ecomlm.methods import make_method

    with pytest.raises(ValueError, match="unknown option"):
        make_method("lora", EsciTask(), {"rank": 8})
    with pytest.raises(ValueError, match="esci_inference"):
        make_method("lora", EsciTask(), {"esci_inference": "vote"})
    with pytest.raises(FileNotFoundError, match="holds no LoRA adapter"):
        adapter_dir(tiny_llama)


# ------------------------------------------------------------------ precision


def test_precision_resolution_and_validation(tiny_llama, tmp_path):
    from ecomlm.methods.llm.lora import resolve_precision

    assert resolve_precision("no") == "no" and resolve_precision("bf16") == "bf16"
    assert resolve_precision("auto") in ("no", "bf16")
    with pytest.raises(ValueError, match="mixed_precision"):
        LoraMethod(EsciTask(), config(tiny_llama, tmp_path, mixed_precision="fp8"))


def test_bf16_autocast_training_lowers_loss_and_predicts(tiny_llama, tmp_path):
    train = esci_examples(16)
    zero = LoraMethod(EsciTask(), config(tiny_llama, tmp_path, max_steps=0)).fit(train)
    tuned = LoraMethod(
        EsciTask(), config(tiny_llama, tmp_path, max_steps=12, mixed_precision="bf16")
    ).fit(train)
    assert tuned.extra_cost["mixed_precision"] == "bf16"
    assert tuned.loss(train) < zero.loss(train) - 0.15
    # adapter weights stay float32 (autocast casts per op, the optimizer updates float32)
    assert all(p.dtype == torch.float32 for p in tuned.model.parameters() if p.requires_grad)
    preds = tuned.predict(train[:4])
    assert all(p.valid and abs(sum(p.scores.values()) - 1) < 1e-3 for p in preds)


def test_cheap_dropout_matches_dropout_statistics():
    from ecomlm.methods.llm.lora import CheapDropout

    drop = CheapDropout(0.05).train()
    x = torch.ones(1000, 1000, requires_grad=True)
    torch.manual_seed(0)
    y = drop(x)
    kept = (y != 0).float().mean().item()
    assert abs(kept - 0.95) < 0.002  # 1e6 draws: 5 standard deviations
    assert torch.allclose(y[y != 0], torch.tensor(1 / 0.95))  # survivors rescaled
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # gradient = mask * scale
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)  # seeded like any torch RNG
    assert not torch.equal(drop(x), y)  # fresh mask per call
    assert drop.eval()(x) is x and CheapDropout(0.0).train()(x) is x
    rows = drop.train()(torch.ones(4096, 64))
    assert abs((rows != 0).float().mean(0) - 0.95).max() < 0.02  # no column is spared


def test_cpu_training_uses_cheap_dropout_and_still_learns(tiny_llama, tmp_path):
    from ecomlm.methods.llm.lora import CheapDropout

    train = esci_examples(16)
    method = LoraMethod(EsciTask(), config(tiny_llama, tmp_path, dropout=0.1, max_steps=12))
    method.fit(train)
    drops = [m for m in method.model.modules() if isinstance(m, CheapDropout)]
    lora_layers = [m for m in method.model.modules() if hasattr(m, "lora_A")]
    assert drops and len(drops) == len(lora_layers)
    zero = LoraMethod(EsciTask(), config(tiny_llama, tmp_path, max_steps=0)).fit(train)
    assert method.loss(train) < zero.loss(train) - 0.15
