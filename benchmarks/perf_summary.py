"""Collect the speed comparisons the issue tracks into benchmarks/results/perf_summary.json.

Each key is read from the JSON its benchmark wrote (the command that produced it is
copied along), never typed in by hand; a key no benchmark has measured is null with
the reason. Goals are the issue's; ``met`` compares.

    python benchmarks/perf_summary.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
GOALS = {
    "train_speedup_fp32": 1.8, "train_speedup_bf16": 1.8, "bf16_matmul_share": 0.6,
    "scoring_vs_generation": 5.0, "scoring_vs_prefill_limit": None,
    "engine_vs_transformers_generation": 3.0, "engine_greedy_match_rate": 0.95,
}  # fmt: skip


def _load(name: str) -> dict:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else {}


def collect() -> dict:
    lora, engine, scoring_run = _load("lora.json"), _load("engine.json"), _load("scoring.json")
    train_cmd = (lora.get("commands") or {}).get("train")
    flops = lora.get("flops", {}).get("bf16", {})
    scoring = scoring_run.get("bf16", {})  # bench_scoring.py: CPU clock, bf16 autocast
    scoring_cmd = scoring_run.get("command")
    values = {
        "train_speedup_fp32": (lora.get("train", {}).get("no", {}).get("speedup_cpu"), train_cmd),
        "train_speedup_bf16": (lora.get("train", {}).get("bf16", {}).get("speedup_cpu"),
                               train_cmd),
        "bf16_matmul_share": (flops.get("ours_share_of_matmul_cpu"), train_cmd),
        "scoring_vs_generation": (scoring.get("scoring_vs_generation_cpu"), scoring_cmd),
        "scoring_vs_prefill_limit": (scoring.get("scoring_vs_prefill_limit_cpu"), scoring_cmd),
        "engine_vs_transformers_generation": (engine.get("engine_vs_transformers_generation"),
                                              engine.get("command")),
        "engine_greedy_match_rate": (engine.get("engine_greedy_match_rate"),
                                     engine.get("command")),
    }  # fmt: skip
    out = {}
    for key, (value, command) in values.items():
        goal = GOALS[key]
        out[key] = {
            "value": value,
            "goal": goal,
            "met": None if value is None or goal is None else value >= goal,
            "command": command,
        }
    out["scoring_vs_prefill_limit"]["note"] = (
        "prefill-limit seconds / scoring seconds: 1.0 = scoring costs no more than one bare "
        "forward pass over each example's own (unshared) tokens"
    )
    if scoring:
        limit = scoring["seconds_cpu"]["generate"] / scoring["seconds_cpu"]["prefill_limit"]
        out["scoring_vs_generation"]["bound"] = (
            f"generation / prefill limit = {limit:.2f}: no scorer that reads each example's "
            f"{scoring['unshared_tokens_mean']} own tokens once (of "
            f"{scoring['prompt_tokens_mean']} per prompt) can beat generation by more"
        )
    profile = _load("train_profile.json")
    if profile:
        shares = profile["bf16"]["share_by_kind"]
        out["bf16_matmul_share"]["bound"] = (
            f"profile of one bf16 step ({profile['command']}): matmul {shares['matmul']}, "
            f"attention {shares['attention']}, other element-wise {shares['other']} of CPU time"
        )
    return out


def main() -> None:
    summary = {"load_average": [round(x, 2) for x in os.getloadavg()], **collect()}
    (RESULTS / "perf_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for key, row in summary.items():
        if key != "load_average":
            print(f"{key:36} {row['value']!s:>8}  goal {row['goal']!s:>5}  met {row['met']}")


if __name__ == "__main__":
    main()
