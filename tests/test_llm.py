"""Label scoring must equal an independent full-sequence log-likelihood computation."""

import math

import pytest
import torch

from ecomlm.methods.llm.causal_lm import (
    MIN_SHARED_PREFIX,
    generate,
    load_llm,
    prompt_text,
    score_labels,
    shared_prefix,
)


def _full_logprob(model, tok, prompt, label):
    p = tok(prompt, add_special_tokens=False).input_ids
    y = tok(label, add_special_tokens=False).input_ids + [tok.eos_token_id]
    ids = torch.tensor([p + y])
    logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
    return sum(logp[len(p) - 1 + i, t].item() for i, t in enumerate(y)) / len(y)


def test_score_labels_matches_direct_computation(tiny_llama):
    model, tok = load_llm(tiny_llama)
    prompts = [
        prompt_text(tok, [{"role": "user", "content": "red shoes"}]),
        prompt_text(tok, [{"role": "user", "content": "a much longer query about phone cases"}]),
    ]
    labels = ["Exact", "Substitute", "Irrelevant"]
    got = score_labels(model, tok, prompts, labels, batch_size=2)
    for prompt, probs in zip(prompts, got, strict=True):
        direct = torch.tensor([_full_logprob(model, tok, prompt, lab) for lab in labels])
        expected = torch.softmax(direct, 0).tolist()
        assert [probs[lab] for lab in labels] == pytest.approx(expected, abs=1e-4)


def test_shared_prefix_scoring_equals_full_sequences(tiny_llama):
    """Prompts with a long common instruction: the prefix runs once, its cache is shared
    (padding sits between prefix and each prompt's own tokens), results keep input order."""
    model, tok = load_llm(tiny_llama)
    instruction = "Classify the relevance of the product to the query. Answer with the label only."
    queries = ["red shoes", "a much longer query about phone cases and chargers", "x", "blue"]
    prompts = [
        prompt_text(tok, [{"role": "user", "content": f"{instruction}\nQuery: {q}"}])
        for q in queries
    ]
    encoded = [tok(p, add_special_tokens=False).input_ids for p in prompts]
    assert len(shared_prefix(encoded)) >= MIN_SHARED_PREFIX  # the shared path is exercised
    labels = ["Exact", "Substitute", "Irrelevant"]
    shared = score_labels(model, tok, prompts, labels, batch_size=3)
    plain = score_labels(model, tok, prompts, labels, batch_size=3, share_prefix=False)
    for prompt, got, ref in zip(prompts, shared, plain, strict=True):
        direct = torch.tensor([_full_logprob(model, tok, prompt, lab) for lab in labels])
        expected = torch.softmax(direct, 0).tolist()
        assert [got[lab] for lab in labels] == pytest.approx(expected, abs=1e-4)
        assert [ref[lab] for lab in labels] == pytest.approx(expected, abs=1e-4)
        # the label log-probs themselves (over the labels), float32: within 1e-4
        log_expected = torch.log_softmax(direct, 0).tolist()
        assert [math.log(got[lab]) for lab in labels] == pytest.approx(log_expected, abs=1e-4)


@pytest.mark.parametrize("tree", [True, False])
def test_labels_of_different_lengths_both_continuation_paths(tiny_llama, monkeypatch, tree):
    """All labels in one row under a block-diagonal 4D mask (llama family) or one row per
    (prompt, label) over a repeated cache (other models): both equal full sequences."""
    import ecomlm.methods.llm.causal_lm as llm

    if not tree:
        monkeypatch.setattr(llm, "TREE_MASK_MODELS", ())
    model, tok = load_llm(tiny_llama)
    assert model.config.model_type in llm.TREE_MASK_MODELS or not tree
    prompts = [prompt_text(tok, [{"role": "user", "content": q}]) for q in ["red", "blue shirt x"]]
    labels = ["A", "ab cd", "a much longer label text here", "Exact"]
    assert len({len(tok(lab, add_special_tokens=False).input_ids) for lab in labels}) >= 3
    got = score_labels(model, tok, prompts, labels, batch_size=2)
    for prompt, probs in zip(prompts, got, strict=True):
        direct = torch.tensor([_full_logprob(model, tok, prompt, lab) for lab in labels])
        expected = torch.softmax(direct, 0).tolist()
        assert [probs[lab] for lab in labels] == pytest.approx(expected, abs=1e-4)


def test_shared_prefix_leaves_a_token_per_sequence():
    assert shared_prefix([[1, 2, 3], [1, 2, 3]]) == [1, 2]
    assert shared_prefix([[1, 2, 3, 4], [1, 2, 9], [1, 2, 3]]) == [1, 2]
    assert shared_prefix([[5], [5, 6]]) == []
    assert shared_prefix([]) == []


def test_generate_is_batch_invariant(tiny_llama):
    model, tok = load_llm(tiny_llama)
    prompts = [prompt_text(tok, [{"role": "user", "content": q}]) for q in ["red", "blue shirt x"]]
    batched = generate(model, tok, prompts, max_new_tokens=5, batch_size=2)
    single = [generate(model, tok, [p], max_new_tokens=5)[0] for p in prompts]
    assert batched == single
