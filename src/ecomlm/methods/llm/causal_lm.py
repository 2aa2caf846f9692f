"""Shared decoder-LLM plumbing: load, chat-prompt, batched generation, label scoring.

Used by LoRA, ICL's local backend, merged adapters and the server, so each of
them stays about its own method.

Prompts may be given as text or as already-tokenized id lists (LoRA passes ids
so its prompt truncation at inference matches training exactly).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
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
    answer_regexes: Sequence[str | None] | None = None,
) -> list[str]:
    """Greedy (or beam) continuation of each prompt, new text only, KV cache on.

    Prompts are sorted by length so each batch carries little padding; a row
    stops at the end-of-turn token (see ``stop_token_ids``). ``answer_regexes``
    (one per prompt) constrain each answer to its task's closed output space with
    lm-format-enforcer: every generated answer then parses.
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
        regexes = [answer_regexes[i] for i in batch] if answer_regexes else None
        out = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=num_beams,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=stops,
            prefix_allowed_tokens_fn=constrained_tokens_fn(tokenizer, regexes, stops),
        )
        new_tokens = out[:, inputs["input_ids"].shape[1] :].tolist()
        for i, row in zip(batch, new_tokens, strict=True):
            cut = next((j for j, t in enumerate(row) if t in stops), len(row))
            outputs[i] = tokenizer.decode(row[:cut], skip_special_tokens=True).strip()
    return outputs


_ENFORCER_DATA: dict[int, Any] = {}


def constrained_tokens_fn(
    tokenizer: Any, regexes: Sequence[str | None] | None, stops: Sequence[int] = ()
) -> Any:
    """A ``prefix_allowed_tokens_fn`` holding row i of the batch to ``regexes[i]``
    (lm-format-enforcer); None when nothing is constrained. Where an answer may end,
    the enforcer allows ``stops`` (the end-of-turn token generation stops on) besides the
    tokenizer's ``eos``: it knows only the latter, which for SmolLM2's GGUF tokenizer is
    ``<|im_start|>``, so a model that ends its turn with ``<|im_end|>``, as trained,
    could never stop inside the constraint and ran on to ``max_new_tokens``."""
    if not regexes or not any(regexes):
        return None
    from lmformatenforcer import RegexParser
    from lmformatenforcer.integrations.transformers import (
        build_token_enforcer_tokenizer_data,
        build_transformers_prefix_allowed_tokens_fn,
    )

    if id(tokenizer) not in _ENFORCER_DATA:  # a vocabulary walk: seconds, once per tokenizer
        _ENFORCER_DATA[id(tokenizer)] = build_token_enforcer_tokenizer_data(tokenizer)
    data = copy.copy(_ENFORCER_DATA[id(tokenizer)])
    data.eos_token_id = sorted({*stops, tokenizer.eos_token_id} - {None})
    rows = [
        build_transformers_prefix_allowed_tokens_fn(data, RegexParser(r)) if r else None
        for r in regexes
    ]
    everything = list(range(len(tokenizer)))

    def allowed(batch_id: int, input_ids: Any) -> list[int]:
        row = rows[batch_id]
        return row(batch_id, input_ids) if row is not None else everything

    return allowed


def shared_prefix(sequences: Sequence[list[int]]) -> list[int]:
    """The longest common token prefix, leaving every sequence at least one token after it."""
    if not sequences:
        return []
    n = min(len(s) for s in sequences) - 1
    first = sequences[0]
    for seq in sequences[1:]:
        n = next((i for i in range(n) if seq[i] != first[i]), n)
    return list(first[: max(n, 0)])


# Model families whose sdpa attention is checked to honour a custom 4D mask (against
# full sequences in tests/test_llm.py); others (e.g. Gemma3, whose sliding-window layers
# would not apply their window to a custom mask) take the repeated-cache path.
TREE_MASK_MODELS = ("llama",)

MIN_SHARED_PREFIX = 16  # tokens; shorter shared prefixes are not worth a separate pass


def prefill_batches(
    model: Any,
    tokenizer: Any,
    encoded: Sequence[list[int]],
    batch_size: int = 8,
    share_prefix: bool = True,
) -> Iterator[tuple[list[int], Any, torch.Tensor]]:
    """Read every prompt once: the prompts' common prefix runs once and its KV cache is
    shared; prompts are length-sorted and each batch runs only its own tokens against
    that cache (only the last position projected to the vocabulary).

    Yields ``(indices of the batch's prompts, model output, attention mask)``; the
    output's cache and the mask cover ``[prefix][left padding][prompt's own tokens]``.
    """
    device = next(model.parameters()).device
    prefix = shared_prefix(encoded) if share_prefix and len(encoded) > 1 else []
    if len(prefix) < MIN_SHARED_PREFIX:
        prefix = []
    prefix_cache = None
    if prefix:
        ids = torch.tensor([prefix], device=device)
        prefix_cache = model(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values
    n_prefix = len(prefix)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        inputs = left_padded(tokenizer, [encoded[i][n_prefix:] for i in batch], device)
        mask = inputs["attention_mask"]
        positions = _positions(mask) + n_prefix
        cache = None
        if prefix_cache is not None:
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(len(batch))
            mask = torch.cat([mask.new_ones(len(batch), n_prefix), mask], dim=1)
        out = model(
            input_ids=inputs["input_ids"],
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        yield batch, out, mask


@torch.inference_mode()
def score_labels(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    labels: Sequence[str],
    batch_size: int = 8,
    normalize: bool = True,
    share_prefix: bool = True,
) -> list[dict[str, float]]:
    """Per prompt, the probability of each label as the answer (softmax over labels).

    A label's score is the (length-normalised) log-likelihood of its tokens plus
    the end-of-turn token. Nothing is computed twice: ``prefill_batches`` reads each
    prompt once against the shared prefix's cache (system prompt + instruction: 133 of
    a real ESCI prompt's 359 tokens), then all labels' tokens continue from the cache in one
    small forward pass. No generation, no vocabulary projection for prompt tokens.
    """
    eot = end_of_turn_id(tokenizer)
    label_ids = [encode(tokenizer, label) + [eot] for label in labels]
    n_labels = len(label_ids)
    width = max(len(ids) for ids in label_ids) - 1  # continuation tokens fed after the prompt
    encoded = [encode(tokenizer, p) for p in prompts]
    results: list[dict[str, float]] = [{} for _ in encoded]
    for batch, out, mask in prefill_batches(model, tokenizer, encoded, batch_size, share_prefix):
        first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (B, V)
        rest = None
        if width > 0:
            cache = out.past_key_values
            rest = _continue_labels(model, cache, mask, label_ids, width, tokenizer.pad_token_id)
        for b, index in enumerate(batch):
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
            results[index] = dict(zip(labels, probs, strict=True))
    return results


def _continue_labels(
    model: Any, cache: Any, mask: torch.Tensor, label_ids: list[list[int]], width: int, pad_id: int
) -> torch.Tensor:
    """Log-probs ``(B * K, width, V)`` of every label's tokens after every prompt in the cache.

    Where the model takes a custom 4D mask, all K labels of a prompt go in one row
    (label k's tokens see the prompt and their own earlier tokens: a block-diagonal
    causal mask), so the prompt cache is used as is; otherwise the cache is
    repeated K times and each (prompt, label) pair gets its own row.
    """
    device, n_labels, batch = mask.device, len(label_ids), mask.shape[0]
    cont = torch.full((n_labels, width), pad_id, dtype=torch.long)
    real = torch.zeros((n_labels, width), dtype=torch.bool)
    for k, ids in enumerate(label_ids):
        cont[k, : len(ids) - 1] = torch.tensor(ids[:-1])
        real[k, : len(ids) - 1] = True
    cont, real = cont.to(device), real.to(device)
    steps = torch.arange(width, device=device)
    lengths = mask.sum(-1)  # the first label token's position in each row
    config = model.config
    if config.model_type in TREE_MASK_MODELS and config._attn_implementation == "sdpa":
        causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
        block = torch.block_diag(*(causal & real[k][None, :] for k in range(n_labels)))
        span = n_labels * width
        full = torch.cat(
            [
                mask.bool()[:, None, None, :].expand(batch, 1, span, -1),
                block.expand(batch, 1, -1, -1),
            ],
            dim=-1,
        )
        logits = model(
            input_ids=cont.reshape(1, span).expand(batch, -1),
            attention_mask=full,
            position_ids=lengths[:, None] + steps.repeat(n_labels)[None, :],
            past_key_values=cache,
            use_cache=True,
        ).logits
        return torch.log_softmax(logits.float(), dim=-1).reshape(batch * n_labels, width, -1)
    cache.batch_repeat_interleave(n_labels)
    full_mask = torch.cat([mask.repeat_interleave(n_labels, 0), real.long().repeat(batch, 1)], 1)
    logits = model(
        input_ids=cont.repeat(batch, 1),
        attention_mask=full_mask,
        position_ids=lengths.repeat_interleave(n_labels)[:, None] + steps,
        past_key_values=cache,
        use_cache=True,
    ).logits
    return torch.log_softmax(logits.float(), dim=-1)  # (B * K, width, V)
