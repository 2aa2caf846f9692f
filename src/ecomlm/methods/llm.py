"""Shared decoder-LLM plumbing: load, chat-prompt, batched generation, label scoring.

Used by LoRA, ICL's local backend, merged adapters and the server, so each of
them stays about its own method.

Prompts may be given as text or as already-tokenized id lists (LoRA passes ids
so its prompt truncation at inference matches training exactly).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ecomlm.models import llm_path
from ecomlm.tasks.base import Messages

Prompt = str | list[int]

_ANSWER_MARKER = "ECOMLM_ANSWER_MARKER"


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

        model = PeftModel.from_pretrained(model, str(adapter))
    model.to(device).eval()
    return model, tokenizer


def prompt_text(tokenizer: Any, messages: Messages) -> str:
    """Chat-templated prompt ending where the assistant's answer starts."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # Base models without a template: plain "role: text" turns.
    turns = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join(turns) + "\n\nAssistant:"


def end_of_turn_id(tokenizer: Any) -> int:
    """The token that closes an assistant answer in the chat template, else ``eos``.

    ChatML models end a turn with ``<|im_end|>`` even where the tokenizer's
    ``eos_token`` is something else (SmolLM2's GGUF tokenizer says
    ``<|im_start|>``); training targets, label scoring and generation stopping
    all use this one token so they agree.
    """
    if getattr(tokenizer, "chat_template", None):
        try:
            turns = [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": _ANSWER_MARKER},
            ]
            text = tokenizer.apply_chat_template(turns, tokenize=False)
        except Exception:  # noqa: BLE001 - odd templates: fall back to eos
            text = ""
        if _ANSWER_MARKER in text:
            tail = text.split(_ANSWER_MARKER, 1)[1]
            special = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
            for token in encode(tokenizer, tail):
                if token in special:
                    return int(token)
    return int(tokenizer.eos_token_id)


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """End-of-turn, tokenizer eos and the model's generation-config eos ids."""
    ids = [end_of_turn_id(tokenizer), tokenizer.eos_token_id]
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids += config_eos if isinstance(config_eos, list) else [config_eos]
    return list(dict.fromkeys(int(i) for i in ids if i is not None))


def left_padded(tokenizer: Any, sequences: Sequence[list[int]], device: Any) -> dict:
    """A left-padded batch (``input_ids``, ``attention_mask``): continuations line up at the end."""
    width = max(len(s) for s in sequences)
    pad = tokenizer.pad_token_id
    ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq) :] = torch.tensor(seq)
        mask[row, width - len(seq) :] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def encode(tokenizer: Any, text: Prompt) -> list[int]:
    """Token ids of a prompt (ids pass through); no special tokens added: the chat
    template already holds them."""
    if isinstance(text, list):
        return text
    return tokenizer(text, add_special_tokens=False).input_ids


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on each left-padded row's first real token."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


@torch.inference_mode()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    max_new_tokens: int = 64,
    batch_size: int = 8,
    num_beams: int = 1,
    max_prompt_tokens: int | None = None,
) -> list[str]:
    """Greedy (or beam) continuation of each prompt, new text only, KV cache on.

    Prompts are sorted by length so each batch carries little padding; a row
    stops at the end-of-turn token (see ``stop_token_ids``).
    """
    encoded = [encode(tokenizer, p) for p in prompts]
    if max_prompt_tokens:
        encoded = [e[-max_prompt_tokens:] for e in encoded]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    outputs: list[str] = [""] * len(encoded)
    device = next(model.parameters()).device
    stops = stop_token_ids(model, tokenizer)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        inputs = left_padded(tokenizer, [encoded[i] for i in batch], device)
        out = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=num_beams,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=stops,
        )
        new_tokens = out[:, inputs["input_ids"].shape[1] :].tolist()
        for i, row in zip(batch, new_tokens, strict=True):
            cut = next((j for j, t in enumerate(row) if t in stops), len(row))
            outputs[i] = tokenizer.decode(row[:cut], skip_special_tokens=True).strip()
    return outputs


@torch.inference_mode()
def score_labels(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    labels: Sequence[str],
    batch_size: int = 8,
    normalize: bool = True,
) -> list[dict[str, float]]:
    """Per prompt, the probability of each label as the answer (softmax over labels).

    A label's score is the (length-normalised) log-likelihood of its tokens plus
    the end-of-turn token. The prompt is run once per batch (KV cache kept,
    only its last position projected to the vocabulary); then all labels'
    tokens continue from the shared cache in one small forward pass. No
    generation, no vocabulary projection for prompt tokens.
    """
    eot = end_of_turn_id(tokenizer)
    label_ids = [encode(tokenizer, label) + [eot] for label in labels]
    n_labels = len(label_ids)
    width = max(len(ids) for ids in label_ids) - 1  # continuation tokens fed after the prompt
    device = next(model.parameters()).device
    results: list[dict[str, float]] = []
    for start in range(0, len(prompts), batch_size):
        chunk = [encode(tokenizer, p) for p in prompts[start : start + batch_size]]
        inputs = left_padded(tokenizer, chunk, device)
        mask = inputs["attention_mask"]
        out = model(**inputs, position_ids=_positions(mask), use_cache=True, logits_to_keep=1)
        first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (B, V)
        rest = None
        if width > 0:
            cache = out.past_key_values
            cache.batch_repeat_interleave(n_labels)
            rows = len(chunk) * n_labels
            cont = torch.full((rows, width), tokenizer.pad_token_id, dtype=torch.long)
            cont_mask = torch.zeros((rows, width), dtype=torch.long)
            for row in range(rows):
                ids = label_ids[row % n_labels][:-1]
                cont[row, : len(ids)] = torch.tensor(ids)
                cont_mask[row, : len(ids)] = 1
            lengths = mask.sum(-1).repeat_interleave(n_labels)
            full_mask = torch.cat([mask.repeat_interleave(n_labels, 0), cont_mask.to(device)], 1)
            logits = model(
                input_ids=cont.to(device),
                attention_mask=full_mask,
                position_ids=lengths[:, None] + torch.arange(width, device=device),
                past_key_values=cache,
                use_cache=True,
            ).logits
            rest = torch.log_softmax(logits.float(), dim=-1)  # (B * K, width, V)
        for b in range(len(chunk)):
            totals = []
            for k, ids in enumerate(label_ids):
                total = first[b, ids[0]]
                if len(ids) > 1:
                    assert rest is not None
                    pred = rest[b * n_labels + k, : len(ids) - 1]
                    target = torch.tensor(ids[1:], device=pred.device)
                    total = total + pred.gather(-1, target[:, None]).sum()
                totals.append(total / len(ids) if normalize else total)
            probs = torch.softmax(torch.stack(totals), dim=0).tolist()
            results.append(dict(zip(labels, probs, strict=True)))
    return results
