"""Paper plan: tokens per example (measured) x dataset sizes (published) -> GPU-hour estimates.

    python benchmarks/scale_plan.py                  # -> benchmarks/results/scale_plan.json

Measured here: prompt and answer token counts per example with the SmolLM2
tokenizer, using the exact training encoding (``lora_data.encode_example``:
chat template + reference answer + end of turn, ``--max-length`` truncation)
on the real samples in ``../shared/data`` where present, else on synthetic data.

Estimated (not measured: no GPU here): GPU-hours from FLOP accounting,
``flops_per_token * tokens / (peak_flops * MFU)``. LoRA training costs ~4 N
FLOPs per token (forward 2N + activation gradients 2N; the frozen base needs no
weight gradients; LoRA's own matmuls are < 1 % at r=16), full fine-tuning 6 N,
gradient checkpointing adds one more forward (+2 N). Inference prefill costs 2 N
per prompt token; label scoring needs no decoding; generation decodes
``answer`` tokens at an assumed decode MFU (memory-bound, much lower).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from ecomlm.io import write_json

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ECOMLM_DATA_DIR", ROOT.parent / "shared" / "data"))

# Published dataset sizes (training examples), with where each number comes from.
DATASETS = {
    "esci": {
        "examples": 2_621_738,
        "note": "Shopping Queries Dataset, all locales (Reddy et al. 2022, arXiv 2206.06588: "
        "130,652 queries, 2,621,738 judgements); US-only is a subset (not verified here)",
    },
    "queryner": {
        "examples": 7_841,
        "note": "QueryNER train split (7,841 / 871 / 993 queries; ../shared/data/README.md)",
    },
    "review_summ": {
        "examples": 31_000,
        "note": "AmaSum: 'over 31,000 products' (Brazinskas et al. 2021, arXiv 2109.04325); "
        "FewSum Amazon has 28 / 12 / 20 products only",
    },
    "desc_gen": {
        "examples": 1_000_000,
        "note": "assumed 1M products (ESCI product table / Amazon metadata have millions; "
        "a study would subsample): a placeholder to scale linearly",
    },
}

# Real samples when available, else synthetic.
SOURCES = {
    "esci": [f"esci:{DATA / 'esci_sample' / 'esci_us_200.csv'}", "synthetic"],
    "queryner": [f"queryner:{DATA / 'queryner'}", "synthetic"],
    "review_summ": [f"fewsum:{DATA / 'fewsum_amazon'}", "synthetic"],
    "desc_gen": [f"esci_products:{DATA / 'esci_sample' / 'esci_us_200.csv'}", "synthetic"],
}

# Model sizes (parameters): the bundled SmolLM2-135M and two larger scale points.
MODELS = {"smollm2-135m": 135e6, "smollm2-1.7b": 1.7e9, "mistral-7b": 7.2e9}
# Assumed model FLOPs utilisation on one H100 (bf16 dense peak 989 TFLOP/s).
PEAK_FLOPS = 989e12
TRAIN_MFU = {"smollm2-135m": 0.10, "smollm2-1.7b": 0.30, "mistral-7b": 0.40}
DECODE_MFU = 0.05  # batched greedy decoding with vLLM: memory-bound


def token_stats(task_name: str, max_length: int, limit: int) -> dict:
    from ecomlm.data import load_splits
    from ecomlm.methods.llm import lora_data
    from ecomlm.methods.llm.causal_lm import end_of_turn_id, load_llm
    from ecomlm.tasks import get_task

    _, tok = load_llm("smollm2")
    task = get_task(task_name)
    eot = end_of_turn_id(tok)
    errors = []
    for source in SOURCES[task_name]:
        try:
            examples = load_splits(task_name, source)["train"][:limit]
        except Exception as e:  # sample missing: fall back to synthetic
            errors.append(f"{source}: {e}")
            continue
        full = [lora_data.encode_example(tok, task, ex, 100_000, eot) for ex in examples]
        cut = [lora_data.encode_example(tok, task, ex, max_length, eot) for ex in examples]
        return {
            "source": source,
            "n": len(examples),
            "prompt_tokens_mean": statistics.mean(e.n_prompt for e in full),
            "answer_tokens_mean": statistics.mean(len(e) - e.n_prompt for e in full),
            "tokens_p95": sorted(len(e) for e in full)[int(0.95 * (len(full) - 1))],
            f"tokens_mean_at_max_length_{max_length}": statistics.mean(len(e) for e in cut),
            "skipped_sources": errors,
        }
    raise RuntimeError(f"no data for {task_name}: {errors}")


def estimates(stats: dict, epochs: float, max_length: int) -> dict:
    out = {}
    for task, s in stats.items():
        n = DATASETS[task]["examples"]
        tokens = s[f"tokens_mean_at_max_length_{max_length}"]
        prompt = min(s["prompt_tokens_mean"], tokens)
        answer = s["answer_tokens_mean"]
        row = {}
        for model, params in MODELS.items():
            train_flops = 4 * params * tokens * n * epochs  # LoRA
            lora_h = train_flops / (PEAK_FLOPS * TRAIN_MFU[model]) / 3600
            full_h = lora_h * 6 / 4
            # evaluation over 10 % of the data as test: prefill + decode (or label scoring)
            n_test = 0.1 * n
            prefill = 2 * params * prompt * n_test / (PEAK_FLOPS * TRAIN_MFU[model])
            decode = 2 * params * answer * n_test / (PEAK_FLOPS * DECODE_MFU)
            row[model] = {
                "lora_train_gpu_hours": round(lora_h, 2),
                "full_ft_gpu_hours": round(full_h, 2),
                "predict_10pct_gpu_hours": round((prefill + decode) / 3600, 3),
            }
        out[task] = {"examples": n, "tokens_per_example": round(tokens, 1), "models": row}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--limit", type=int, default=200, help="examples measured per task")
    ap.add_argument("--epochs", type=float, default=3.0, help="eCeLLM recipe: 3 epochs")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scale_plan.json"))
    args = ap.parse_args()
    start = time.perf_counter()
    stats = {t: token_stats(t, args.max_length, args.limit) for t in DATASETS}
    result = {
        "command": "python benchmarks/scale_plan.py "
        f"--max-length {args.max_length} --limit {args.limit} --epochs {args.epochs}",
        "tokenizer": "SmolLM2-135M-Instruct (bundled)",
        "token_stats": stats,
        "datasets": DATASETS,
        "assumptions": {
            "gpu": "1x H100 SXM, bf16 dense peak 989 TFLOP/s",
            "train_mfu": TRAIN_MFU,
            "decode_mfu": DECODE_MFU,
            "lora_flops_per_token": "4 N (full fine-tuning 6 N; +2 N with gradient checkpointing)",
            "epochs": args.epochs,
            "label": "ESTIMATES from FLOP accounting, not measurements",
        },
        "estimates": estimates(stats, args.epochs, args.max_length),
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_json(args.out, result)
    print(json.dumps(result["estimates"], indent=1))


if __name__ == "__main__":
    main()
