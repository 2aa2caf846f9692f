"""Where the GPU time goes: a torch.profiler table of our LoRA trainer's steps, then one
served ESCI prediction timed (bf16 and fp32, 1 and 16 examples a call).

    python benchmarks/gpu_model.py SMOLLM2_CONFIG_DIR /tmp/smollm2-random
    python benchmarks/gpu_where.py --base /tmp/smollm2-random
"""

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
from bench_lora import ours_round  # noqa: E402

from ecomlm.data import load_splits  # noqa: E402
from ecomlm.serve.registry import ModelRegistry  # noqa: E402
from ecomlm.tasks import get_task  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--base", required=True)
base = ap.parse_args().base
task = get_task("esci")
splits = load_splits("esci", "synthetic", seed=0)
train, test = splits["train"][:320], splits["test"][:64]
ours_round(base, task, train[:16], 2, 8, 384, "bf16", device="auto")
acts = [ProfilerActivity.CPU, ProfilerActivity.CUDA]
with profile(activities=acts) as prof:
    r, _ = ours_round(
        base, task, train[:160], 20, 8, 384, "bf16", device="auto", save_to=Path("/tmp/run")
    )
print("ours", r, "tok/s", r["tokens"] / r["seconds"])
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=12))
for dtype in ("bfloat16", "float32"):
    reg = ModelRegistry.from_args(["esci=/tmp/run"], device="cuda", dtype=dtype)
    reg.predict("esci", test[:2])
    for n in (1, 16):
        torch.cuda.synchronize()
        t = time.perf_counter()
        for i in range(8):
            reg.predict("esci", test[i * n % 48 : i * n % 48 + n])
        torch.cuda.synchronize()
        print(
            f"serve predict {dtype} batch {n}: {1000 * (time.perf_counter() - t) / 8:.1f} ms/call"
        )
    if dtype == "bfloat16":
        with profile(activities=acts) as prof:
            reg.predict("esci", test[:1])
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
    del reg
