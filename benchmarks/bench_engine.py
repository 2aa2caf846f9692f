"""llama.cpp engine vs in-process transformers generation, side by side in one process.

Same prompts (zero-shot, synthetic test examples), same greedy decoding, one thread
each; interleaved per task so machine load hits both alike. Reports CPU-seconds per
generated token for each path, their ratio (``engine_vs_transformers_generation``,
higher = engine faster), and how often the greedy texts are identical
(``engine_greedy_match_rate``, per task and overall).

    python benchmarks/bench_engine.py --n 8 --out benchmarks/results/engine.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

BUDGET = {"esci": 8, "queryner": 64, "review_summ": 64, "desc_gen": 96}


def measure_task(name: str, n: int, model, tokenizer, engine) -> dict:
    from ecomlm.data import load_splits
    from ecomlm.methods.llm.causal_lm import encode, generate, prompt_text
    from ecomlm.tasks import get_task

    task = get_task(name)
    examples = load_splits(name, "synthetic")["test"][:n]
    prompts = [prompt_text(tokenizer, task.messages(ex)) for ex in examples]
    new = BUDGET[name]
    start = time.process_time()
    theirs = generate(model, tokenizer, prompts, max_new_tokens=new, batch_size=8)
    hf_cpu = time.process_time() - start
    start, ours, n_out = time.process_time(), [], 0
    for p in prompts:
        text, k = engine.complete(encode(tokenizer, p), new)
        ours.append(text)
        n_out += k
    engine_cpu = time.process_time() - start
    matches = sum(a.strip() == b.strip() for a, b in zip(ours, theirs, strict=True))
    return {
        "n": n, "max_new_tokens": new, "engine_tokens": n_out,
        "transformers_cpu_s": round(hf_cpu, 2), "engine_cpu_s": round(engine_cpu, 2),
        "speedup": round(hf_cpu / max(engine_cpu, 1e-9), 2),
        "greedy_match_rate": round(matches / n, 3),
        "mismatch_example": next(({"engine": a, "transformers": b.strip()} for a, b in
                                  zip(ours, theirs, strict=True) if a.strip() != b.strip()), None),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--tasks", default="esci,queryner,review_summ,desc_gen")
    parser.add_argument("--out", default="benchmarks/results/engine.json")
    parser.add_argument(
        "--weights",
        nargs="+",
        default=["native", "bf16", "f32"],
        help="engine weight types to compare (first = the headline keys)",
    )
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from ecomlm.methods.llm.causal_lm import load_llm
    from ecomlm.methods.llm.engine import LlamaCppEngine

    model, tokenizer = load_llm("smollm2")
    variants = {}
    for weights in args.weights:
        engine = LlamaCppEngine("smollm2", threads=1, weights=weights)
        tasks = {name: measure_task(name, args.n, model, tokenizer, engine)
                 for name in args.tasks.split(",")}  # fmt: skip
        engine.close()
        hf = sum(t["transformers_cpu_s"] for t in tasks.values())
        ours = sum(t["engine_cpu_s"] for t in tasks.values())
        variants[weights] = {
            "engine_vs_transformers_generation": round(hf / max(ours, 1e-9), 2),
            "engine_greedy_match_rate": round(
                sum(t["greedy_match_rate"] * t["n"] for t in tasks.values())
                / sum(t["n"] for t in tasks.values()), 3),
            "tasks": tasks,
        }  # fmt: skip
        for name, t in tasks.items():
            print(f"{weights:6} {name:12} speedup {t['speedup']:5.2f}x  "
                  f"match {t['greedy_match_rate']:.2f}", flush=True)  # fmt: skip
    headline = variants[args.weights[0]]
    result = {
        "command": "python benchmarks/bench_engine.py "
        + f"--n {args.n} --weights {' '.join(args.weights)} --out {args.out}",
        "model": "smollm2 (SmolLM2-135M-Instruct Q4_1 GGUF; transformers: de-quantized f32); "
        "engine weights: the GGUF re-typed by llama.cpp (native = Q4_1 as shipped)",
        "threads": 1,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "headline_weights": args.weights[0],
        "engine_vs_transformers_generation": headline["engine_vs_transformers_generation"],
        "engine_greedy_match_rate": headline["engine_greedy_match_rate"],
        "variants": variants,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "variants"}, indent=2))


if __name__ == "__main__":
    main()
