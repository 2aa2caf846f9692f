"""Constrained decoding: a random model (the perfect adversary) still answers in the
task's closed output space on the in-process transformers path, so every answer parses."""

from __future__ import annotations

import pytest

from ecomlm.methods.llm.lora import LoraMethod
from ecomlm.tasks.esci import EsciTask
from ecomlm.tasks.queryner import NerExample, QueryNerTask
from tests.test_lora import config, esci_examples

pytestmark = pytest.mark.usefixtures("one_torch_thread")


NER = [
    NerExample(["red", "leather", "shoes"], ["B-color", "B-material", "B-core_product_type"], "a"),
    NerExample(["usb", "c", "cable", "2", "pack"], ["O"] * 5, "b"),
    NerExample(["phone"], ["B-core_product_type"], "c"),
]


@pytest.mark.parametrize("constrained", [True, False])
def test_random_model_answers_parse_only_when_constrained(tiny_llama, tmp_path, constrained):
    cfg = config(tiny_llama, tmp_path, max_steps=0, max_new_tokens=24, constrained=constrained)
    ner = LoraMethod(QueryNerTask(), cfg).fit([])
    ner_valid = [p.valid for p in ner.predict(NER)]
    cfg = config(tiny_llama, tmp_path, max_steps=0, max_new_tokens=6, constrained=constrained,
                 esci_inference="generate")  # fmt: skip
    esci = LoraMethod(EsciTask(), cfg).fit([])
    esci_valid = [p.valid for p in esci.predict(esci_examples(4))]
    if constrained:
        assert all(ner_valid) and all(esci_valid)
    else:  # the same random model, free to write anything, fails to parse
        assert not all(ner_valid + esci_valid)


def test_regex_accepts_the_reference_answers():
    import re

    task = QueryNerTask()
    for ex in NER:
        assert re.fullmatch(task.answer_regex(ex), task.reference(ex)), task.reference(ex)
    assert re.fullmatch(EsciTask().answer_regex(), "Substitute")


def test_a_complete_answer_may_end_with_the_end_of_turn_token(tiny_llama):
    """SmolLM2's GGUF tokenizer calls ``<|im_start|>`` its eos; the model ends turns with
    ``<|im_end|>``. The constraint must allow that token where the answer may end, or a
    trained model can never stop and repeats lines up to ``max_new_tokens``."""
    import torch
    from transformers import AutoTokenizer

    from ecomlm.methods.llm.causal_lm import constrained_tokens_fn, end_of_turn_id

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    tok.eos_token = "<|im_start|>"
    eot = end_of_turn_id(tok)
    assert eot != tok.eos_token_id
    prompt = tok("Answer:", add_special_tokens=False).input_ids
    answer = tok("Exact", add_special_tokens=False).input_ids
    allowed = constrained_tokens_fn(tok, ["(Exact|Substitute)"], [eot])
    assert eot not in allowed(0, torch.tensor(prompt))  # the first call: the prompt
    for n in range(1, len(answer) + 1):  # generation feeds the answer token by token
        step = allowed(0, torch.tensor(prompt + answer[:n]))
    assert eot in step and tok.eos_token_id in step  # "Exact" is complete: it may stop
