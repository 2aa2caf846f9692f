"""Shared decoder-LLM plumbing: load, chat-prompt, batched generation, label scoring.

Used by LoRA, ICL's local backend, merged adapters and the server, so each of
them stays about its own method.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ecomlm.models import llm_path
from ecomlm.tasks.base import Messages


def load_llm(
    name: str = "smollm2", adapter: str | None = None, dtype: str = "float32", device: str = "cpu"
) -> tuple[Any, Any]:
    """(model, tokenizer) for a bundled name, local path or HF id, plus optional PEFT adapter."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = llm_path(name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    model.to(device).eval()
    return model, tokenizer


def prompt_text(tokenizer: Any, messages: Messages) -> str:
    """Chat-templated prompt ending where the assistant's answer starts."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # Base models without a template: plain "role: text" turns.
    turns = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join(turns) + "\n\nAssistant:"


def _left_padded(tokenizer: Any, sequences: Sequence[list[int]], device: Any) -> dict:
    width = max(len(s) for s in sequences)
    pad = tokenizer.pad_token_id
    ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq) :] = torch.tensor(seq)
        mask[row, width - len(seq) :] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def _encode(tokenizer: Any, text: str) -> list[int]:
    # The chat template already holds the special tokens.
    return tokenizer(text, add_special_tokens=False).input_ids


@torch.inference_mode()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    max_new_tokens: int = 64,
    batch_size: int = 8,
    num_beams: int = 1,
    max_prompt_tokens: int | None = None,
) -> list[str]:
    """Greedy (or beam) continuation of each prompt, new text only, KV cache on.

    Prompts are sorted by length so each batch carries little padding.
    """
    encoded = [_encode(tokenizer, p) for p in prompts]
    if max_prompt_tokens:
        encoded = [e[-max_prompt_tokens:] for e in encoded]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    outputs: list[str] = [""] * len(encoded)
    device = next(model.parameters()).device
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        inputs = _left_padded(tokenizer, [encoded[i] for i in batch], device)
        out = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=num_beams,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        for i, row in zip(batch, new_tokens, strict=True):
            outputs[i] = tokenizer.decode(row, skip_special_tokens=True).strip()
    return outputs


@torch.inference_mode()
def score_labels(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    labels: Sequence[str],
    batch_size: int = 8,
    normalize: bool = True,
) -> list[dict[str, float]]:
    """Per prompt, the probability of each label as the answer (softmax over labels).

    Each (prompt, label) pair is one left-padded row, so the label tokens sit at
    the end and only their logits are computed (``logits_to_keep``): no
    vocabulary projection for prompt tokens, no generation.
    """
    eos = tokenizer.eos_token_id
    label_ids = [_encode(tokenizer, label) + [eos] for label in labels]
    keep = max(len(ids) for ids in label_ids) + 1
    device = next(model.parameters()).device
    results: list[dict[str, float]] = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        rows = [_encode(tokenizer, p) + ids for p in chunk for ids in label_ids]
        inputs = _left_padded(tokenizer, rows, device)
        logits = model(**inputs, logits_to_keep=keep).logits.float()
        logprobs = torch.log_softmax(logits, dim=-1)
        row = 0
        for _ in chunk:
            totals = []
            for ids in label_ids:
                n = len(ids)
                # logits at position t predict token t+1: the last n targets use
                # the n positions before the final one.
                pred = logprobs[row, keep - n - 1 : keep - 1]
                target = torch.tensor(ids, device=pred.device)
                total = pred.gather(-1, target[:, None]).sum()
                totals.append(total / n if normalize else total)
                row += 1
            probs = torch.softmax(torch.stack(totals), dim=0).tolist()
            results.append(dict(zip(labels, probs, strict=True)))
    return results
