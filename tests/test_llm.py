"""Label scoring must equal an independent full-sequence log-likelihood computation."""

import pytest
import torch

from ecomlm.methods.llm import generate, load_llm, prompt_text, score_labels


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


def test_generate_is_batch_invariant(tiny_llama):
    model, tok = load_llm(tiny_llama)
    prompts = [prompt_text(tok, [{"role": "user", "content": q}]) for q in ["red", "blue shirt x"]]
    batched = generate(model, tok, prompts, max_new_tokens=5, batch_size=2)
    single = [generate(model, tok, [p], max_new_tokens=5)[0] for p in prompts]
    assert batched == single
