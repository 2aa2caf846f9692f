"""Prefix-shared LoRA training: one pass over the prompts' common prefix per batch gives
the loss and gradients of running every prompt whole (Llama and Gemma-3 layouts)."""

from __future__ import annotations

import random

import pytest
import torch

from ecomlm.methods.llm import lora_data
from ecomlm.methods.llm.train_lora import AnswerOnlyLoss

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny(arch: str):
    from peft import LoraConfig, get_peft_model
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    shape = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**shape))
    else:  # sliding-window layers with a window shorter than the sequences
        model = Gemma3ForCausalLM(Gemma3TextConfig(**shape, head_dim=8, sliding_window=12,
                                                   attn_implementation="sdpa"))  # fmt: skip
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear")
    return get_peft_model(model, lora)


def _examples() -> list[lora_data.TrainExample]:
    rng = random.Random(0)
    prefix = [rng.randrange(3, 64) for _ in range(20)]
    out = []
    for own, answer in ((3, 2), (9, 4), (1, 3), (6, 1)):
        prompt = prefix + [rng.randrange(3, 64) for _ in range(own)]
        out.append(lora_data.TrainExample(prompt + [rng.randrange(3, 64) for _ in range(answer)],
                                          len(prompt)))  # fmt: skip
    return out


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_shared_prefix_loss_and_gradients_equal_whole_prompts(arch):
    model = _tiny(arch)
    loss_module = AnswerOnlyLoss(model).train()
    results = []
    for share in (False, True):
        batch = lora_data.collate(_examples(), pad_id=0, share_prefix=share)
        assert ("prefix_ids" in batch) == share
        model.zero_grad()
        loss = loss_module(**batch)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        results.append((loss.detach(), grads))
    (whole, whole_grads), (shared, shared_grads) = results
    assert torch.allclose(whole, shared, atol=1e-5)
    for name, grad in whole_grads.items():
        assert torch.allclose(grad, shared_grads[name], atol=1e-5), name


def test_collate_cuts_the_prefix_and_keeps_answer_targets():
    examples = _examples()
    whole = lora_data.collate(examples, pad_id=0)
    shared = lora_data.collate(examples, pad_id=0, share_prefix=True)
    assert shared["prefix_ids"].shape == (1, 20)
    assert shared["input_ids"].shape[1] == whole["input_ids"].shape[1] - 20
    assert torch.equal(shared["targets"], whole["targets"])
    flat = shared["input_ids"].reshape(-1)
    # the token after each answer-predicting position is the target it predicts
    assert torch.equal(flat[shared["positions"] + 1], shared["targets"])
    single = lora_data.collate(examples[:1], pad_id=0, share_prefix=True)
    assert "prefix_ids" not in single  # nothing is shared by one prompt
