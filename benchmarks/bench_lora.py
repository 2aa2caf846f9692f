"""LoRA benchmarks: trainer speed vs HF Trainer, label scoring vs generation, acceptance runs.

    python benchmarks/bench_lora.py speed        # -> benchmarks/results/lora.json
    python benchmarks/bench_lora.py acceptance --tasks queryner esci --train-size 96 \
        --max-eval 40 --out benchmarks/results/lora_acceptance.json --runs /tmp/lora_runs

``acceptance``: zero-shot base vs single-task LoRA per task; each (task, variant)
is one ``ecomlm.runs.execute_run`` (the path the study uses), appended to
``--out`` after every run so partial progress survives.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ecomlm.io import read_json, write_json
from ecomlm.runs import RunSpec, execute_run

sys.path.insert(0, str(Path(__file__).parent))
from lora_flops import flop_model, matmul_gflops, train_flops, train_summary  # noqa: E402

VARIANTS = ["zero_shot", "lora", "lora_fp32"]  # lora_fp32: LoRA with mixed_precision="no"


def acceptance_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--tasks", nargs="+", default=["queryner", "esci", "desc_gen", "review_summ"])
    ap.add_argument("--source", default="synthetic")
    ap.add_argument("--train-size", type=int, default=96)
    ap.add_argument("--max-eval", type=int, default=40)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--max-length", type=int, default=384)
    ap.add_argument("--variants", nargs="+", default=["zero_shot", "lora"], choices=VARIANTS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/lora_acceptance.json")
    ap.add_argument("--runs", default="/tmp/lora_runs")


def acceptance(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)

    out = Path(args.out)
    results = read_json(out) if out.exists() else {"runs": []}
    results["machine"] = {
        "cpu_count": os.cpu_count(),
        "torch_threads": args.threads,
        "platform": platform.platform(),
        "note": "load average logged per run",
    }
    for task in args.tasks:
        for variant in args.variants:
            method_config = {
                "max_length": args.max_length,
                "batch_size": args.batch_size,
                "lr": args.lr,
                "epochs": args.epochs,
                "eval_batch_size": 8,
                "log_every": 5,
            }
            if variant == "zero_shot":
                method_config["max_steps"] = 0
            if variant == "lora_fp32":  # the same run without bf16 autocast
                method_config["mixed_precision"] = "no"
            spec = RunSpec(
                task=task,
                method="lora",
                source=args.source,
                train_size=args.train_size,
                seed=0,
                method_config=method_config,
                max_eval=args.max_eval,
            )
            run_dir = Path(args.runs) / f"{task}-{variant}-{args.source.split(':')[0]}"
            spec.method_config["work_dir"] = str(run_dir)
            start = time.time()
            metrics = execute_run(spec, run_dir)
            cost = read_json(run_dir / "cost.json")
            row = {
                "task": task,
                "variant": variant,
                "source": args.source,
                "train_size": args.train_size,
                "eval_n": read_json(run_dir / "metrics.json")["n"],
                "run_dir": str(run_dir),
                "metrics": metrics,
                "cost": cost,
                "wall_seconds": round(time.time() - start, 1),
                "load_average_after": os.getloadavg(),
                "method_config": spec.method_config,
            }
            results["runs"] = [
                r
                for r in results["runs"]
                if (r["task"], r["variant"], r["source"]) != (task, variant, args.source)
            ] + [row]
            write_json(out, results)
            print(json.dumps({k: row[k] for k in ("task", "variant", "metrics")}), flush=True)


# --------------------------------------------------------------------------- speed

BENCH_LORA = {"r": 16, "alpha": 16, "dropout": 0.05, "target_modules": "all-linear"}


def ours_round(
    base: str, task: Any, examples: list[Any], steps: int, batch: int, max_len: int,
    precision: str, device: str = "cpu", save_to: Path | None = None, **overrides: Any,
):  # fmt: skip
    """Our trainer on ``examples``; ``device="auto"`` takes the GPU; ``save_to`` keeps the
    adapter as a run folder (``save_to/model``) for the GPU check's serving parts;
    ``overrides``: other ``LoraMethod.Config`` fields."""
    from ecomlm.methods.llm.lora import LoraMethod

    cfg = LoraMethod.Config(
        base_model=base, max_steps=steps, batch_size=batch, max_length=max_len,
        checkpoint_every=0, log_every=0, warmup_ratio=0.0, mixed_precision=precision,
        device=device, **{**BENCH_LORA, **overrides},
    )  # fmt: skip
    method = LoraMethod(task, cfg).fit(examples)
    if save_to is not None:
        method.save(Path(save_to) / "model")
    cost = method.extra_cost
    return {
        "tokens": cost["train_tokens"],
        "padded_tokens": cost["train_padded_tokens"],
        "answer_tokens": cost["train_answer_tokens"],
        "seconds": cost["train_loop_seconds"],
        "cpu_seconds": cost["train_loop_cpu_seconds"],
        "final_loss": cost["final_loss"],
    }, method.model


def hf_round(
    base: str, task: Any, examples: list[Any], steps: int, batch: int, max_len: int,
    precision: str, device: str = "cpu",
):  # fmt: skip
    """A plain HF Trainer + PEFT run: random batches padded to the longest, full logits;
    ``precision="bf16"`` is the Trainer's own ``bf16=True`` (CPU autocast)."""
    import tempfile

    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    from ecomlm.methods.llm import lora_data
    from ecomlm.methods.llm.causal_lm import load_llm

    model, tok = load_llm(base)
    model = get_peft_model(
        model,
        LoraConfig(
            r=BENCH_LORA["r"], lora_alpha=BENCH_LORA["alpha"], lora_dropout=BENCH_LORA["dropout"],
            target_modules=BENCH_LORA["target_modules"], task_type="CAUSAL_LM",
        ),
    )  # fmt: skip
    rows = []
    for ex in examples:
        enc = lora_data.encode_example(tok, task, ex, max_len)
        rows.append(
            {"input_ids": enc.input_ids, "attention_mask": [1] * len(enc), "labels": enc.labels}
        )
    seen = {"tokens": 0, "padded": 0, "answers": 0, "widths": []}

    class Counting(Trainer):
        def training_step(self, model, inputs, num_items_in_batch=None):
            seen["tokens"] += int(inputs["attention_mask"].sum())
            seen["padded"] += int(inputs["attention_mask"].numel())
            seen["answers"] += int((inputs["labels"] != -100).sum())
            seen["widths"] += [int(inputs["attention_mask"].shape[1])] * int(
                inputs["attention_mask"].shape[0]
            )
            return super().training_step(model, inputs, num_items_in_batch)

    clock: dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            clock.setdefault("start", time.perf_counter())
            clock.setdefault("cpu_start", time.process_time())

        def on_step_end(self, args, state, control, **kw):
            if device != "cpu":
                torch.cuda.synchronize()  # GPU steps are asynchronous: time finished work
            clock["end"] = time.perf_counter()
            clock["cpu_end"] = time.process_time()

    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=batch, max_steps=steps,
            learning_rate=2e-4, lr_scheduler_type="cosine", warmup_ratio=0.0,
            logging_strategy="no", save_strategy="no", report_to=[], use_cpu=device == "cpu",
            dataloader_num_workers=0, disable_tqdm=True, seed=0, bf16=precision == "bf16",
        )  # fmt: skip
        trainer = Counting(
            model=model, args=args, train_dataset=Dataset.from_list(rows),
            data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100),
            callbacks=[Clock()],
        )  # fmt: skip
        trainer.train()
    from accelerate.state import AcceleratorState

    # the Trainer's bf16=True pins accelerate's process-wide state; our next fit sets its own
    AcceleratorState._reset_state(reset_partial_state=True)
    return {
        "tokens": seen["tokens"],
        "padded_tokens": seen["padded"],
        "answer_tokens": seen["answers"],
        "widths": seen["widths"],
        "seconds": clock["end"] - clock["start"],
        "cpu_seconds": clock["cpu_end"] - clock["cpu_start"],
    }, model


def scoring_round(
    base: str, task: Any, examples: list[Any], mode: str, batch: int, precision: str
) -> tuple[float, float, float]:
    from ecomlm.methods.llm.lora import LoraMethod

    cfg = LoraMethod.Config(
        base_model=base, max_steps=0, esci_inference=mode, eval_batch_size=batch,
        mixed_precision=precision,
    )  # fmt: skip
    method = LoraMethod(task, cfg).fit([])
    start, cpu = time.perf_counter(), time.process_time()
    preds = method.predict(examples)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    return seconds, cpu_seconds, sum(not p.valid for p in preds) / len(preds)


def train_part(
    args: argparse.Namespace, task: Any, pool: list[Any], seqs: list[int], shape: list[int]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, int]]:
    """Per precision: rounds of our trainer and the HF Trainer on the same examples, with
    the matmul rate in that precision measured before and after (the FLOP-share denominator)."""
    per_round = args.steps * args.batch_size
    counts: dict[str, int] = {}
    train: dict[str, Any] = {}
    flops: dict[str, Any] = {"accounting": train_flops.__doc__}
    for precision in args.precision:
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        rounds = []
        for r in range(args.rounds):
            examples = pool[r * per_round : (r + 1) * per_round]
            before = matmul_gflops(*shape, dtype=dtype)
            ours, model = ours_round(
                args.base, task, examples, args.steps, args.batch_size, args.max_length, precision
            )
            counts = counts or flop_model(model)
            del model
            hf, model = hf_round(
                args.base, task, examples, args.steps, args.batch_size, args.max_length, precision
            )
            del model
            after = matmul_gflops(*shape, dtype=dtype)
            rounds.append({"ours": ours, "hf": hf, "matmul_gflops": [before, after]})
            print(precision, json.dumps(rounds[-1]), flush=True)
        train[precision], flops[precision] = train_summary(rounds, counts, seqs, shape)
    return train, flops, counts


def inference_part(
    args: argparse.Namespace, task: Any, eval_examples: list[Any], precision: str
) -> dict[str, Any]:
    """ESCI label scoring vs generation with the zero-shot base, in one precision."""
    times = {"score": [0.0, 0.0], "generate": [0.0, 0.0]}
    invalid = {}
    for _ in range(args.rounds):
        for mode in ("score", "generate"):
            wall, cpu, invalid[mode] = scoring_round(
                args.base, task, eval_examples, mode, args.eval_batch, precision
            )
            times[mode][0] += wall
            times[mode][1] += cpu
    n_eval = len(eval_examples) * args.rounds
    (sw, sc), (gw, gc) = times["score"], times["generate"]
    return {
        "examples": n_eval,
        "score_examples_per_wall_s": round(n_eval / sw, 3),
        "generate_examples_per_wall_s": round(n_eval / gw, 3),
        "speedup_wall": round(gw / sw, 3),
        "score_examples_per_cpu_s": round(n_eval / sc, 3),
        "generate_examples_per_cpu_s": round(n_eval / gc, 3),
        "speedup_cpu": round(gc / sc, 3),
        "invalid_rate": invalid,
        "generate_max_new_tokens": 8,
        "model": "zero-shot base (no adapter training)",
    }


def speed(args: argparse.Namespace) -> None:
    """Per precision: our trainer and the HF Trainer on the same examples, then the
    matmul rate in that precision (the FLOP-share denominator); then esci scoring vs
    generation in each precision."""
    from ecomlm.data import load_splits
    from ecomlm.methods.llm import lora_data
    from ecomlm.methods.llm.causal_lm import load_llm
    from ecomlm.tasks import get_task

    torch.set_num_threads(args.threads)
    task = get_task(args.task)
    splits = load_splits(args.task, "synthetic", seed=0)
    pool = splits["train"]
    per_round = args.steps * args.batch_size
    load_start = os.getloadavg()
    shape = [args.batch_size * 256, 576, 1536]
    _, tok = load_llm(args.base)
    seqs = [
        len(lora_data.encode_example(tok, task, ex, args.max_length))
        for ex in pool[: args.rounds * per_round]
    ]
    previous = read_json(Path(args.out)) if Path(args.out).exists() else {}
    if "train" in args.parts:
        train, flops, counts = train_part(args, task, pool, seqs, shape)
    else:  # keep the earlier training results
        train, flops, counts = previous["train"], previous["flops"], previous["params"]
    inference = previous.get("esci_inference", {}) if "inference" not in args.parts else {}
    if task.labels and "inference" in args.parts:
        eval_examples = splits["test"][: args.eval_examples]
        inference = {p: inference_part(args, task, eval_examples, p) for p in args.precision}
    command = "python benchmarks/bench_lora.py speed " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in vars(args).items()
        if k != "command"
    )
    commands = {**previous.get("commands", {}), **{part: command for part in args.parts}}
    result = {
        "commands": commands,
        "device": f"CPU ({os.cpu_count()} cores, torch threads={args.threads})",
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "model": args.base,
        "task": args.task,
        "setup": {
            "steps_per_round": args.steps,
            "batch_size": args.batch_size,
            "rounds": args.rounds,
            "max_length": args.max_length,
            "lora": BENCH_LORA,
            "weights_dtype": "float32",
            "precisions": args.precision,
        },
        "params": counts,
        "train": train,
        "flops": flops,
        "esci_inference": inference,
    }
    write_json(args.out, result)
    print(json.dumps({k: result[k] for k in ("train", "flops")}, default=str)[:3000])


def speed_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--base", default="smollm2")
    ap.add_argument("--task", default="esci")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--max-length", type=int, default=384)
    ap.add_argument("--precision", nargs="+", default=["no", "bf16"], choices=["no", "bf16"])
    ap.add_argument("--eval-examples", type=int, default=32)
    ap.add_argument("--eval-batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--parts", nargs="+", default=["train", "inference"])
    ap.add_argument("--out", default="benchmarks/results/lora.json")


# --------------------------------------------------------------------------- report

MAIN_METRIC = {"esci": "accuracy", "queryner": "f1", "review_summ": "rougeL", "desc_gen": "rougeL"}


def acceptance_table(paths: list[Path]) -> list[str]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for path in paths:
        if path.exists():
            for r in read_json(path)["runs"]:
                rows[(r["task"], r["source"], r["variant"])] = r
    lines = [
        "| task | source | train | eval n | metric | zero-shot | LoRA | LoRA float32 "
        "| invalid (zs / LoRA) | LoRA train s | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task, source in sorted({(t, s) for t, s, _ in rows}):
        zs, lo = rows.get((task, source, "zero_shot")), rows.get((task, source, "lora"))
        metric = MAIN_METRIC.get(task, "")
        any_row = lo or zs
        cfg = any_row["method_config"]

        def val(r: dict | None, key: str = metric) -> str:
            return "—" if r is None else f"{r['metrics'].get(key, float('nan')):.3f}"

        cmd = (
            f"`bench_lora.py acceptance --tasks {task} --source {source} --train-size "
            f"{any_row['train_size']} --max-eval {any_row['eval_n']} --lr {cfg['lr']} "
            f"--batch-size {cfg['batch_size']} --max-length {cfg['max_length']}`"
        )
        lines.append(
            f"| {task} | {source} | {any_row['train_size']} | {any_row['eval_n']} | {metric} | "
            f"{val(zs)} | {val(lo)} | {val(rows.get((task, source, 'lora_fp32')))} | "
            f"{val(zs, 'invalid_rate')} / {val(lo, 'invalid_rate')} | "
            f"{'—' if lo is None else lo['cost'].get('train_seconds')} | {cmd} |"
        )
    return lines


def report(args: argparse.Namespace) -> None:
    """Print markdown tables of the speed and acceptance results (pasted into docs)."""
    lines = []
    speed_path = Path(args.speed)
    if speed_path.exists():
        r = read_json(speed_path)
        commands = r.get("commands") or {"train": r["command"]}
        lines += [
            *(f"Speed ({part}): `{cmd}`." for part, cmd in commands.items()),
            f"{r['device']}, load average "
            f"{[round(x, 1) for x in r['load_average_start']]} → "
            f"{[round(x, 1) for x in r['load_average_end']]}, model {r['model']}, "
            f"task {r['task']}.",
            "",
            "| precision | measure | clock | ours | HF Trainer + PEFT | ratio |",
            "|---|---|---|---|---|---|",
        ]
        for precision, t in r["train"].items():
            f = r["flops"][precision]
            name = "float32" if precision == "no" else f"{precision} autocast"
            for c in ("cpu", "wall"):
                lines += [
                    f"| {name} | training tokens/s (real tokens) | {c} | "
                    f"{t[f'ours_tokens_per_{c}_s']} | {t[f'hf_trainer_tokens_per_{c}_s']} | "
                    f"{t[f'speedup_{c}']}× |",
                    f"| {name} | share of measured matmul "
                    f"({f[f'achievable_matmul_gflops_{c}']} GFLOP/s) | {c} | "
                    f"{f[f'ours_share_of_matmul_{c}']} | {f[f'hf_share_of_matmul_{c}']} | |",
                ]
            lines.append(
                f"| {name} | positions computed per real token | | "
                f"{t['ours_positions_per_token']} | {t['hf_positions_per_token']} | |"
            )
        if r.get("esci_inference"):
            lines += [
                "",
                "| precision | esci inference | examples/CPU-s | examples/wall-s | invalid rate |",
                "|---|---|---|---|---|",
            ]
        for precision, e in r.get("esci_inference", {}).items():
            name = "float32" if precision == "no" else f"{precision} autocast"
            lines += [
                f"| {name} | label scoring | {e['score_examples_per_cpu_s']} | "
                f"{e['score_examples_per_wall_s']} | {e['invalid_rate']['score']} |",
                f"| {name} | generation (max {e['generate_max_new_tokens']} new tokens) | "
                f"{e['generate_examples_per_cpu_s']} | {e['generate_examples_per_wall_s']} | "
                f"{e['invalid_rate']['generate']} |",
                f"| {name} | speed-up | {e['speedup_cpu']}× | {e['speedup_wall']}× | |",
            ]
    lines += ["", *acceptance_table([Path(p) for p in args.acceptance])]
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    speed_args(sub.add_parser("speed", help="trainer tokens/s, FLOP share, scoring speed"))
    acceptance_args(sub.add_parser("acceptance", help="zero-shot vs LoRA per task"))
    rep = sub.add_parser("report", help="markdown tables from the result files")
    rep.add_argument("--speed", default="benchmarks/results/lora.json")
    rep.add_argument(
        "--acceptance",
        nargs="+",
        default=[
            "benchmarks/results/lora_acceptance.json",
            "benchmarks/results/lora_acceptance_small.json",
            "benchmarks/results/lora_acceptance_summ.json",
            "benchmarks/results/lora_queryner.json",
            "benchmarks/results/lora_acceptance_esci256.json",
            "benchmarks/results/lora_queryner_2k.json",
        ],
    )
    args = ap.parse_args()
    {"speed": speed, "acceptance": acceptance, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
