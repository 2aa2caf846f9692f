"""Micro-measurements behind the LoRA docs' explanations (one torch thread, CPU seconds).

    python benchmarks/bench_micro.py matmul    # float32 vs bf16 GFLOP/s (SmolLM2 MLP shape)
    python benchmarks/bench_micro.py dropout   # nn.functional.dropout vs CheapDropout, ms
    python benchmarks/bench_micro.py step      # share of a training step spent in torch dropout
    python benchmarks/bench_micro.py scoring   # label continuation: tree mask vs repeated cache
    python benchmarks/bench_micro.py profile --out benchmarks/results/train_profile.json
        # where one LoRA training step (8 ESCI examples) spends its CPU time, per precision
    python benchmarks/bench_micro.py devloss --examples 100 --runs /tmp/lora_runs_esci256
        # answer-token loss (float32) of the adapters written by
        # `bench_lora.py acceptance --tasks esci --variants zero_shot lora lora_fp32`

Each prints one JSON line; docs/results_lora.md and docs/lora.md quote them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch


def timed(fn: Any, repeats: int = 20) -> float:
    """CPU seconds per call, after one warm-up call."""
    fn()
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - start) / repeats


def matmul(args: argparse.Namespace) -> dict:
    m, k, n = 2568, 576, 1536  # 8 x ~320 tokens through SmolLM2's MLP up-projection
    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        seconds = timed(lambda a=a, b=b: a @ b)
        out[str(dtype).removeprefix("torch.")] = round(2 * m * k * n / seconds / 1e9)
    return {"gflops_per_cpu_s": out, "shape": [m, k, n]}


def dropout(args: argparse.Namespace) -> dict:
    from ecomlm.methods.llm.lora import CheapDropout

    x = torch.randn(2568, 576)
    cheap = CheapDropout(0.05).train()
    return {
        "input": list(x.shape),
        "torch_dropout_ms": round(1000 * timed(lambda: torch.nn.functional.dropout(x, 0.05)), 1),
        "cheap_dropout_ms": round(1000 * timed(lambda: cheap(x)), 1),
    }


def step(args: argparse.Namespace) -> dict:
    """CPU-s of one SmolLM2 LoRA forward + backward (8 ESCI examples) with PEFT's own
    dropout (p=0.05) and with none: the difference is what dropout costs."""
    from ecomlm.data import load_splits
    from ecomlm.methods.llm import lora_data
    from ecomlm.methods.llm.lora import AnswerOnlyLoss, LoraMethod
    from ecomlm.tasks import get_task

    task = get_task("esci")
    train = load_splits("esci", "synthetic", seed=0)["train"][:8]
    out: dict[str, Any] = {}
    for p in (0.05, 0.0):
        method = LoraMethod(task, LoraMethod.Config(base_model=args.base, dropout=p))
        method._load(None, trainable=True)  # fresh model; device="cpu" would swap dropout
        for module in method.model.modules():  # back to PEFT's torch dropout for this test
            drops = getattr(module, "lora_dropout", None)
            if isinstance(drops, torch.nn.ModuleDict):
                for key in drops:
                    drops[key] = torch.nn.Dropout(p) if p else torch.nn.Identity()
        batch = lora_data.collate(
            method._training_examples(train)[0][task.name], method.tokenizer.pad_token_id
        )
        loss = AnswerOnlyLoss(method.model.train())
        for precision in ("float32", "bf16"):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                seconds = timed(lambda f=loss, b=batch: f(**b).backward(), repeats=2)
            out[f"{precision}_dropout_{p}"] = round(seconds, 2)
    for precision in ("float32", "bf16"):
        with_drop, without = out[f"{precision}_dropout_0.05"], out[f"{precision}_dropout_0.0"]
        out[f"{precision}_dropout_share"] = round(1 - without / with_drop, 3)
    return {"cpu_seconds_per_step": out, "tokens": int(batch["attention_mask"].sum())}


def scoring(args: argparse.Namespace) -> dict:
    """Label scoring of ESCI test prompts with both continuation paths, interleaved,
    plus the CPU seconds of each forward pass of the tree path."""
    from ecomlm.data import load_splits
    from ecomlm.methods import llm
    from ecomlm.tasks import get_task

    task = get_task("esci")
    examples = load_splits("esci", "synthetic", seed=0)["test"][: args.examples]
    model, tok = llm.load_llm(args.base)
    prompts = [llm.encode(tok, llm.prompt_text(tok, task.messages(e))) for e in examples]
    labels, tree_models = list(task.labels), llm.TREE_MASK_MODELS
    seconds = {"tree": 0.0, "repeat": 0.0}
    probs = {}
    for _ in range(args.rounds):
        for mode in seconds:
            llm.TREE_MASK_MODELS = tree_models if mode == "tree" else ()
            start = time.process_time()
            probs[mode] = llm.score_labels(model, tok, prompts, labels, batch_size=args.batch)
            seconds[mode] += time.process_time() - start
    llm.TREE_MASK_MODELS = tree_models
    passes = []
    forward = model.forward

    def logged(*a: Any, **kw: Any) -> Any:
        start = time.process_time()
        out = forward(*a, **kw)
        passes.append([list(kw["input_ids"].shape), round(time.process_time() - start, 2)])
        return out

    model.forward = logged
    llm.score_labels(model, tok, prompts, labels, batch_size=args.batch)
    diff = max(
        abs(probs["tree"][i][k] - probs["repeat"][i][k])
        for i in range(len(prompts))
        for k in labels
    )
    return {
        "prompts": len(prompts),
        "rounds": args.rounds,
        "cpu_seconds": {k: round(v, 2) for k, v in seconds.items()},
        "max_prob_difference": diff,
        "tree_forward_passes_cpu_s": passes,  # [input shape, CPU-s]: prefix, own tokens, labels
    }


# aten ops by what bounds them: dense matmuls (the FLOP-share numerator), attention,
# dtype casts / copies (autocast re-casting the frozen fp32 weights), the rest
# (element-wise, norms, softmax, indexing).
OP_KINDS = {
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear"),
    "attention": ("aten::_scaled_dot_product", "aten::scaled_dot_product"),
    "cast_copy": ("aten::copy_", "aten::_to_copy", "aten::to", "aten::clone", "aten::contiguous"),
}


def _kind(op: str) -> str:
    return next((k for k, names in OP_KINDS.items() if op.startswith(names)), "other")


def profile(args: argparse.Namespace) -> dict:
    """Self CPU time of one warm forward + backward of our LoRA trainer's step, by op
    kind and top ops, in float32 and bf16 autocast."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from ecomlm.data import load_splits
    from ecomlm.methods.llm import lora_data
    from ecomlm.methods.llm.lora import AnswerOnlyLoss, LoraMethod
    from ecomlm.tasks import get_task

    task = get_task("esci")
    train = load_splits("esci", "synthetic", seed=0)["train"][:8]
    method = LoraMethod(task, LoraMethod.Config(base_model=args.base))
    method._load(None, trainable=True)
    batch = lora_data.collate(
        method._training_examples(train)[0][task.name], method.tokenizer.pad_token_id
    )
    loss = AnswerOnlyLoss(method.model.train())
    out: dict[str, Any] = {"tokens": int(batch["attention_mask"].sum())}
    for precision in ("float32", "bf16"):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss(**batch).backward()  # warm-up
            with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                loss(**batch).backward()
        events = [(e.key, e.self_cpu_time_total / 1e6) for e in prof.key_averages()]
        total = sum(s for _, s in events)
        kinds: dict[str, float] = {}
        for op, seconds in events:
            kinds[_kind(op)] = kinds.get(_kind(op), 0.0) + seconds
        top = sorted(events, key=lambda e: -e[1])[:12]
        out[precision] = {
            "step_cpu_seconds": round(total, 2),
            "share_by_kind": {k: round(v / total, 3) for k, v in sorted(kinds.items())},
            "top_ops": [[op, round(s, 3), round(s / total, 3)] for op, s in top],
        }
    return out


def devloss(args: argparse.Namespace) -> dict:
    from ecomlm.data import load_splits
    from ecomlm.methods.llm.lora import LoraMethod

    test = load_splits("esci", "synthetic", seed=0)["test"][: args.examples]
    losses = {}
    for variant in ("zero_shot", "lora", "lora_fp32"):
        method = LoraMethod.load(f"{args.runs}/esci-{variant}-synthetic/model")
        losses[variant] = round(method.loss(test), 4)  # loss() runs in float32
    return {"examples": len(test), "answer_token_loss": losses}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("what", choices=["matmul", "dropout", "step", "scoring", "devloss", "profile"])
    ap.add_argument("--base", default="smollm2")
    ap.add_argument("--examples", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--runs", default="/tmp/lora_runs_esci256")
    ap.add_argument("--out", default="", help="also write the JSON here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    run = {"matmul": matmul, "dropout": dropout, "step": step, "scoring": scoring}
    run["devloss"], run["profile"] = devloss, profile
    result = {"what": args.what, **run[args.what](args)}
    if args.out:
        result["command"] = "python benchmarks/bench_micro.py " + " ".join(sys.argv[1:])
        result["load_average"] = os.getloadavg()
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
