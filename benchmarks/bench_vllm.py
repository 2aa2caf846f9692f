"""vLLM multi-LoRA throughput vs the transformers path (GPU only; skips otherwise).

    python benchmarks/bench_vllm.py --base smollm2 --adapters 4 --examples 256
        -> benchmarks/results/vllm.json (device named in the file)

Builds ``--adapters`` LoRA adapters on the base model (random, non-zero B so
every adapter really changes the outputs; the speed does not depend on training),
one per task in turn, saved as ecomlm run folders. Then, on synthetic examples:

* ``vllm_mixed``: all adapters' requests interleaved in one ``predict_mixed`` call
  (vLLM schedules several adapters per batch);
* ``vllm_single``: one adapter at a time;
* ``transformers``: ``LoraMethod.predict`` per adapter (PEFT, batched ``generate``
  / label scoring) on the first ``--hf-examples`` examples.

Reported per variant: wall seconds, examples/s, and agreement of the vLLM
predictions with the transformers ones on the shared examples (bf16 vs the
transformers dtype can flip near-ties; a large disagreement means a prompt bug).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

TASKS = ["esci", "queryner", "desc_gen", "review_summ"]


def make_adapter_runs(base: str, n: int, out: Path, r: int) -> dict[str, Path]:
    import torch
    from peft import LoraConfig, get_peft_model

    from ecomlm.io import write_json
    from ecomlm.methods.base import METHOD_FILE
    from ecomlm.methods.llm.causal_lm import load_llm

    runs = {}
    for i in range(n):
        task = TASKS[i % len(TASKS)]
        name = f"{task}-{i}"
        model, _ = load_llm(base)
        torch.manual_seed(i)
        peft = get_peft_model(
            model,
            LoraConfig(r=r, lora_alpha=r, target_modules="all-linear", init_lora_weights=False),
        )
        for p in peft.parameters():  # keep the perturbation small: outputs stay fluent
            if p.requires_grad:
                p.data.mul_(0.01)
        folder = out / name / "model"
        peft.save_pretrained(str(folder / "adapter"))
        header = {
            "method": "lora",
            "task": task,
            "task_options": {},
            "config": {"base_model": base, "r": r, "max_length": 512},
        }
        write_json(folder / METHOD_FILE, header)
        runs[name] = out / name
    return runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="smollm2")
    ap.add_argument("--adapters", type=int, default=4)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--examples", type=int, default=256, help="examples per adapter")
    ap.add_argument("--hf-examples", type=int, default=32, help="transformers-path subset")
    ap.add_argument("--work", default="/tmp/ecomlm-bench-vllm")
    ap.add_argument("--out", default="benchmarks/results/vllm.json")
    args = ap.parse_args()

    from ecomlm.scale.vllm_backend import (
        TransformersLoraPredictor,
        VllmMultiLora,
        vllm_available,
    )

    if not vllm_available():
        print("bench_vllm: skipped — needs `pip install vllm` and a CUDA GPU", file=sys.stderr)
        return 0
    import torch

    from ecomlm.data import load_splits
    from ecomlm.io import write_json

    runs = make_adapter_runs(args.base, args.adapters, Path(args.work), args.rank)
    data = {t: load_splits(t, "synthetic")["test"] for t in TASKS}
    requests = []
    for i in range(args.examples):
        for name in runs:
            task = name.rsplit("-", 1)[0]
            requests.append((name, data[task][i % len(data[task])]))

    engine = VllmMultiLora.from_runs(runs)
    engine.predict_mixed(requests[: len(runs)])  # warm-up (CUDA graphs, adapter loading)
    results = {}
    start = time.perf_counter()
    mixed = engine.predict_mixed(requests)
    seconds = time.perf_counter() - start
    results["vllm_mixed"] = {"examples": len(requests), "seconds": round(seconds, 2)}
    start = time.perf_counter()
    for name in runs:
        engine.predict_mixed([rq for rq in requests if rq[0] == name])
    seconds = time.perf_counter() - start
    results["vllm_single"] = {"examples": len(requests), "seconds": round(seconds, 2)}

    del engine
    torch.cuda.empty_cache()
    hf = TransformersLoraPredictor(runs)
    shared = [
        i for i, (name, _) in enumerate(requests) if i // len(runs) < args.hf_examples
    ]  # the first hf_examples rounds: every adapter
    start = time.perf_counter()
    hf_preds = hf.predict_mixed([requests[i] for i in shared])
    seconds = time.perf_counter() - start
    results["transformers"] = {"examples": len(shared), "seconds": round(seconds, 2)}
    for row in results.values():
        row["examples_per_second"] = round(row["examples"] / max(row["seconds"], 1e-9), 1)
    same = sum(
        json.dumps(mixed[i].value) == json.dumps(p.value)
        for i, p in zip(shared, hf_preds, strict=True)
    )
    out = {
        "command": " ".join(["python", *sys.argv]),
        "device": torch.cuda.get_device_name(0),
        "platform": platform.platform(),
        "base": args.base,
        "adapters": args.adapters,
        "lora_rank": args.rank,
        "results": results,
        "agreement_vllm_vs_transformers": round(same / max(len(shared), 1), 3),
    }
    write_json(args.out, out)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
