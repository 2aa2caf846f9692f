"""FLOP accounting for the LoRA speed benchmark (``bench_lora.py speed``): the matmul
rate the machine achieves, the FLOPs a training pass executes, and the per-precision
summary that compares our trainer with the HF Trainer in tokens/s and matmul share."""

from __future__ import annotations

import time
from typing import Any

import torch


def matmul_gflops(
    m: int, k: int, n: int, repeats: int = 20, dtype: torch.dtype = torch.float32
) -> dict[str, float]:
    """Achievable GFLOP/s of a ``(m x k) @ (k x n)`` matmul, per wall and CPU second."""
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    for _ in range(3):
        a @ b
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        a @ b
    flops = 2 * m * k * n * repeats / 1e9
    return {
        "wall": flops / (time.perf_counter() - wall),
        "cpu": flops / (time.process_time() - cpu),
    }


def flop_model(model: Any) -> dict[str, int]:
    """Parameter counts the FLOP accounting needs (see docs/lora.md)."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = lm.config
    head = lm.get_output_embeddings().weight.numel()
    lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    body = sum(
        p.numel()
        for n, p in lm.get_decoder().named_parameters()
        if p.ndim == 2 and "embed" not in n and "lora_" not in n
    )
    return {
        "body_params": body,
        "lm_head_params": head,
        "lora_params": lora,
        "layers": cfg.num_hidden_layers,
        "hidden": cfg.hidden_size,
        "attn_width": cfg.num_attention_heads
        * getattr(cfg, "head_dim", cfg.hidden_size // cfg.num_attention_heads),
    }


def train_flops(p: dict[str, int], seqs: list[int], computed: int, head_tokens: int) -> float:
    """FLOPs one LoRA training pass executes (forward + backward).

    ``computed``: token positions run through the decoder (real + padding);
    ``seqs``: per-row widths (for attention); ``head_tokens``: positions projected
    onto the vocabulary (answer positions for our trainer, every position for the
    HF Trainer). Per position: frozen weights 2N forward + 2N input-gradient (no
    weight gradient) = 4N; LoRA weights 6 per parameter; lm_head (frozen, tied)
    4 * V * d per projected position; causal attention scores 3 * 2 * layers *
    len * width per position (QK^T and AV, halved for causality, x3 with backward).
    """
    attn = sum(3 * 2 * p["layers"] * n * p["attn_width"] * n for n in seqs)
    return float(
        4 * p["body_params"] * computed
        + 6 * p["lora_params"] * computed
        + attn
        + 4 * p["lm_head_params"] * head_tokens
    )


def train_summary(
    rounds: list[dict], counts: dict[str, int], seqs: list[int], matmul_shape: list[int]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Tokens/s, speed-up and FLOP share of one precision's rounds (both clocks)."""

    def total(side: str, key: str) -> float:
        return sum(x[side][key] for x in rounds)

    ours_tok, hf_tok = total("ours", "tokens"), total("hf", "tokens")
    ours_pad, hf_pad = total("ours", "padded_tokens"), total("hf", "padded_tokens")
    ours_answers = total("ours", "answer_tokens")
    hf_widths = [w for x in rounds for w in x["hf"].pop("widths")]
    # ours: rows are length-bucketed, attention over ~own length; computed = padded positions
    ours_flops = train_flops(counts, seqs, ours_pad, ours_answers)
    hf_flops = train_flops(counts, hf_widths, hf_pad, hf_pad)
    six_n = 6 * (counts["body_params"] + counts["lm_head_params"]) * ours_tok
    train: dict[str, Any] = {
        # positions run through the decoder per real token: padding adds, a prompt
        # prefix shared by a batch (ours, since session 6) subtracts
        "ours_positions_per_token": round(ours_pad / max(ours_tok, 1), 4),
        "hf_positions_per_token": round(hf_pad / max(hf_tok, 1), 4),
        "answer_token_share": round(ours_answers / max(ours_tok, 1), 4),
    }
    flops: dict[str, Any] = {"matmul_shape": matmul_shape}
    # "wall": wall-clock seconds; "cpu": this process's CPU seconds (the fairer clock
    # when other jobs share the machine).
    for clock, key in (("wall", "seconds"), ("cpu", "cpu_seconds")):
        ours_s, hf_s = total("ours", key), total("hf", key)
        matmul = [g[clock] for x in rounds for g in x["matmul_gflops"]]
        achievable = sum(matmul) / len(matmul)
        train[f"ours_tokens_per_{clock}_s"] = round(ours_tok / ours_s, 2)
        train[f"hf_trainer_tokens_per_{clock}_s"] = round(hf_tok / hf_s, 2)
        train[f"speedup_{clock}"] = round((ours_tok / ours_s) / (hf_tok / hf_s), 3)
        flops[f"achievable_matmul_gflops_{clock}"] = round(achievable, 2)
        flops[f"ours_executed_gflops_{clock}"] = round(ours_flops / ours_s / 1e9, 2)
        flops[f"ours_share_of_matmul_{clock}"] = round(ours_flops / ours_s / 1e9 / achievable, 3)
        flops[f"ours_6n_convention_gflops_{clock}"] = round(six_n / ours_s / 1e9, 2)
        flops[f"hf_executed_gflops_{clock}"] = round(hf_flops / hf_s / 1e9, 2)
        flops[f"hf_share_of_matmul_{clock}"] = round(hf_flops / hf_s / 1e9 / achievable, 3)
    train["rounds"] = rounds
    return train, flops
