"""ESCI label scoring vs free generation vs its own limit, side by side in one process.

    python benchmarks/bench_scoring.py --n 64 --out benchmarks/results/scoring.json

On the same model, prompts, batch size and precision it times, in rotating order:

- ``score``: ``score_labels`` (the dataset's shared instruction prefix encoded once,
  each example's own tokens in length-sorted batches against that cache, all labels'
  continuations in one pass), the path ``lora``/``merge`` take for label tasks;
- ``score_no_shared_prefix``: the same with ``share_prefix=False`` (every example
  re-reads the whole prompt), to show what the dataset-wide prefix cache buys;
- ``generate``: free greedy generation of the answer (``task.max_new_tokens`` new
  tokens, unconstrained, stopping at end of turn), what an LLM answer costs without
  scoring;
- ``prefill_limit``: one bare forward pass over each example's unshared tokens
  against the same prefix cache (last position only projected to the vocabulary):
  the least any scorer that reads every example's own tokens can spend.

``scoring_vs_generation`` = generate seconds / score seconds; ``scoring_vs_prefill_limit``
= prefill_limit seconds / score seconds (1.0 = scoring costs nothing beyond reading
each example once). Data: the joined real ESCI set when ``--source`` is given, else the
synthetic generator.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import torch

from ecomlm.io import write_json


@torch.inference_mode()
def prefill_limit(model: Any, tok: Any, prompts: list[list[int]], batch: int) -> None:
    """Forward over every prompt's tokens after the shared prefix, against its cache:
    ``score_labels``' own prompt pass, without the labels' continuation."""
    from ecomlm.methods.llm.causal_lm import prefill_batches

    for _ in prefill_batches(model, tok, prompts, batch):
        pass


def measure(args: argparse.Namespace, precision: str) -> dict[str, Any]:
    from ecomlm.data import load_splits
    from ecomlm.methods.llm import lora_data
    from ecomlm.methods.llm.causal_lm import generate, load_llm, score_labels, shared_prefix
    from ecomlm.methods.llm.precision import inference_autocast
    from ecomlm.tasks import get_task

    task = get_task("esci")
    examples = load_splits("esci", args.source or "synthetic", seed=0)["test"][: args.n]
    model, tok = load_llm(args.base)
    model.eval()
    prompts = [lora_data.prompt_ids(tok, task, ex, args.max_length) for ex in examples]
    labels = list(task.labels)
    calls = {
        "score": lambda: score_labels(model, tok, prompts, labels, args.batch),
        "score_no_shared_prefix": lambda: score_labels(
            model, tok, prompts, labels, args.batch, share_prefix=False
        ),
        "generate": lambda: generate(model, tok, prompts, task.max_new_tokens, args.batch),
        "prefill_limit": lambda: prefill_limit(model, tok, prompts, args.batch),
    }
    wall = dict.fromkeys(calls, 0.0)
    cpu = dict.fromkeys(calls, 0.0)
    answers: dict[str, Any] = {}
    with inference_autocast(model, precision):
        for r in range(args.rounds):
            names = list(calls)
            names = names[r % len(names) :] + names[: r % len(names)]  # rotate: fair to drift
            for name in names:
                w, c = time.perf_counter(), time.process_time()
                answers[name] = calls[name]()
                wall[name] += time.perf_counter() - w
                cpu[name] += time.process_time() - c
    scored = [max(p, key=p.get) for p in answers["score"]]
    generated = [task.parse(t, ex) for t, ex in zip(answers["generate"], examples, strict=True)]
    lengths = [len(p) for p in prompts]
    shared = len(shared_prefix(prompts))
    out: dict[str, Any] = {
        "examples": len(examples),
        "rounds": args.rounds,
        "prompt_tokens_mean": round(sum(lengths) / len(lengths), 1),
        "shared_prefix_tokens": shared,
        "unshared_tokens_mean": round(sum(lengths) / len(lengths) - shared, 1),
        "invalid_rate": {
            "score": sum(s not in labels for s in scored) / len(scored),
            "generate": sum(not g.valid for g in generated) / len(generated),
        },
        "seconds_wall": {k: round(v, 3) for k, v in wall.items()},
        "seconds_cpu": {k: round(v, 3) for k, v in cpu.items()},
    }
    for clock, t in (("wall", wall), ("cpu", cpu)):
        out[f"scoring_vs_generation_{clock}"] = round(t["generate"] / t["score"], 3)
        out[f"scoring_vs_prefill_limit_{clock}"] = round(t["prefill_limit"] / t["score"], 3)
        out[f"shared_prefix_speedup_{clock}"] = round(t["score_no_shared_prefix"] / t["score"], 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="smollm2")
    ap.add_argument("--source", default="", help="e.g. esci:PATH (default: synthetic)")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=384)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--precision", nargs="+", default=["no", "bf16"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/scoring.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()
    result = {
        "command": "python benchmarks/bench_scoring.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v if not isinstance(v, list) else ' '.join(v)}"
            for k, v in vars(args).items()
            if v != ""
        ),  # fmt: skip
        "device": f"CPU ({os.cpu_count()} cores, torch threads={args.threads})",
        "model": args.base,
        "load_average_start": load,
    }
    for precision in args.precision:
        result[precision] = measure(args, precision)
        print(precision, json.dumps(result[precision]), flush=True)
    result["load_average_end"] = os.getloadavg()
    write_json(args.out, result)


if __name__ == "__main__":
    main()
