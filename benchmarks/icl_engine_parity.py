"""Do the llama.cpp engine and the transformers path give the same k-shot ICL answers?

Builds the ICL method's own k-shot prompts (demonstrations chosen and trimmed to the
context exactly as a run does), decodes them greedily on both paths, and for every
prompt where the texts differ finds the first token where they part and the margin
between the transformers path's top two logits there: a small margin is a near-tie that
a different summation order can flip, a large one a real difference in what was read.

    python benchmarks/icl_engine_parity.py --task desc_gen --n 4 \
        --source esci_products:ESCI_JOINED_CSV --out benchmarks/results/icl_engine_parity.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def parting_margin(model, tokenizer, prompt_ids: list[int], ours: str, theirs: str) -> dict:
    """First token where the two answers differ, and the transformers top-2 logit gap there."""
    import torch

    a = tokenizer(ours, add_special_tokens=False).input_ids
    b = tokenizer(theirs, add_special_tokens=False).input_ids
    common = next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + b[:common]])).logits[0, -1].float()
    top = torch.topk(logits, 2)
    return {
        "parting_token": common,
        "transformers_token": tokenizer.decode(top.indices[0]),
        "runner_up_token": tokenizer.decode(top.indices[1]),
        "top2_logit_margin": round(float(top.values[0] - top.values[1]), 4),
    }


def measure(task_name: str, source: str, n: int, k: int, pool: int) -> dict:
    from ecomlm.data import load_splits
    from ecomlm.methods import make_method
    from ecomlm.methods.llm.causal_lm import encode, generate, load_llm, prompt_text
    from ecomlm.tasks import get_task

    task = get_task(task_name)
    splits = load_splits(task_name, source)
    config = {"backend": "local", "model": "smollm2", "k": k, "select": "similar",
              "engine": "llama.cpp", "cache_dir": "off"}  # fmt: skip
    method = make_method("icl", task, config).fit(splits["train"][:pool])
    messages, used = method.prompts(splits["test"][:n])
    new_tokens = method.max_new_tokens()
    model, tokenizer = load_llm("smollm2")
    prompts = [prompt_text(tokenizer, m) for m in messages]
    theirs = [t.strip() for t in generate(model, tokenizer, prompts, new_tokens, batch_size=1)]
    engine = method.backend().engine  # the one the run would use (its context, threads)
    ids = [encode(tokenizer, p) for p in prompts]
    ours = [engine.complete(i, new_tokens)[0].strip() for i in ids]
    parted = [
        {"example": j, **parting_margin(model, tokenizer, ids[j], ours[j], theirs[j])}
        for j in range(n) if ours[j] != theirs[j]
    ]  # fmt: skip
    return {
        "task": task_name, "source": source, "n": n, "k": k, "demonstration_pool": pool,
        "engine_context": engine.context_limit,
        "demos_used": used, "prompt_tokens": [len(i) for i in ids],
        "max_new_tokens": new_tokens, "identical": n - len(parted), "parted": parted,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", default="desc_gen")
    parser.add_argument("--source", default="synthetic")
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--pool", type=int, default=200, help="demonstration pool (train)")
    parser.add_argument("--out", default="benchmarks/results/icl_engine_parity.json")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    result = measure(args.task, args.source, args.n, args.k, args.pool)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
