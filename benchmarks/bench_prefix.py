"""Prefix-shared LoRA training vs every prompt run whole, side by side in one process.

    python benchmarks/bench_prefix.py --out benchmarks/results/lora_prefix.json

Per task, rounds alternate the two settings on the same examples (same steps, seed,
precision); tokens/s counts the examples' own tokens either way, so the ratio is the
wall-time saving. Real data from ``--data`` when present, else the synthetic default.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_lora import ours_round  # noqa: E402

from ecomlm.data import load_splits  # noqa: E402
from ecomlm.io import write_json  # noqa: E402
from ecomlm.tasks import get_task  # noqa: E402

SOURCES = {
    "queryner": "queryner:{data}/queryner",
    "esci": "esci:{data}/esci_joined/esci_us_joined.csv",
    "desc_gen": "esci_products:{data}/esci_joined/esci_us_joined.csv",
}


def bench_task(args: argparse.Namespace, name: str) -> dict:
    source = SOURCES[name].format(data=args.data) if Path(args.data).exists() else "synthetic"
    task = get_task(name)
    examples = load_splits(name, source, seed=0)["train"][: args.steps * args.batch]
    runs: dict[str, list[dict]] = {"whole": [], "shared": []}
    for _ in range(args.rounds):
        for setting in ("whole", "shared"):
            out, model = ours_round(args.base, task, examples, args.steps, args.batch,
                                    args.max_length, args.precision,
                                    share_prefix=setting == "shared")  # fmt: skip
            del model
            runs[setting].append(out)
            print(name, setting, json.dumps(out), flush=True)
    rate = {k: sum(r["tokens"] for r in v) / sum(r["seconds"] for r in v) for k, v in runs.items()}
    return {
        "source": source.split(":")[0],
        "tokens_per_s_whole": round(rate["whole"], 1),
        "tokens_per_s_shared": round(rate["shared"], 1),
        "speedup": round(rate["shared"] / rate["whole"], 3),
        "computed_positions_ratio": round(
            runs["shared"][0]["padded_tokens"] / runs["whole"][0]["padded_tokens"], 3
        ),
        "final_loss_whole": [r["final_loss"] for r in runs["whole"]],
        "final_loss_shared": [r["final_loss"] for r in runs["shared"]],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", nargs="+", default=["queryner", "esci"], choices=list(SOURCES))
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--base", default="smollm2")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=384)
    ap.add_argument("--precision", default="bf16", choices=["no", "bf16"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/lora_prefix.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    result = {
        "command": "python benchmarks/bench_prefix.py " + " ".join(sys.argv[1:]),
        "device": f"CPU ({os.cpu_count()} cores, torch threads={args.threads})",
        "setup": {k: v for k, v in vars(args).items() if k not in ("out", "tasks")},
        "tasks": {name: bench_task(args, name) for name in args.tasks},
        "load_average": [load_start, os.getloadavg()],
    }
    write_json(args.out, result)
    print(json.dumps(result["tasks"], indent=2))


if __name__ == "__main__":
    main()
