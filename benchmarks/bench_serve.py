"""Bounded load test of ``ecomlm serve`` on 127.0.0.1: micro-batching vs one-by-one.

For each mode a real server is started as a subprocess (``python -m ecomlm.cli
serve``) on a free local port, warmed up, then hit with a FIXED number of
requests at a fixed concurrency under a hard time cap. Recorded per mode:
status counts, lost responses (no HTTP answer within the cap), p50/p95/p99
latency, throughput, and the server's own batching stats from ``/health``.
Modes run back to back on the same model, so the speed-up is side by side.

Model: the bundled SmolLM2-135M-Instruct with a LoRA adapter (r=16, all linear
layers, PEFT's default init so B=0: same compute as a trained adapter, which is
what a throughput test measures), or any run given with ``--run``.

    nice -n 10 .venv/bin/python benchmarks/bench_serve.py     # SmolLM2 + LoRA, chat, 200 x 32
    nice -n 10 .venv/bin/python benchmarks/bench_serve.py --base tiny --endpoint predict

Results go to ``benchmarks/results/serve.json`` under a scenario key
(``--name``, default ``<base>_<endpoint>``), so scenarios accumulate.

Exit status 1 when any response is a 5xx or lost.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]

QUERIES = [
    ("red running shoes", "Nike Revolution 6 running shoes, red"),
    ("iphone 13 case", "Spigen clear case for iPhone 13"),
    ("usb c charger 2 pack", "Anker 20W USB-C charger, 2 pack"),
    ("cotton t shirt men", "Hanes men's cotton crew t-shirt, black"),
    ("stainless water bottle", "Hydro Flask 32 oz wide mouth bottle"),
    ("wireless mouse", "Logitech M185 wireless mouse, grey"),
    ("yoga mat thick", "Gaiam 6mm yoga mat, purple"),
    ("hdmi cable 10ft", "Amazon Basics HDMI cable, 10 feet"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_tiny_base(out: Path) -> str:
    """A random 2-layer Llama (hidden 64) with SmolLM2's tokenizer and chat template.

    Serving overhead and batching mechanics at a scale any laptop runs; not
    representative of a real model's compute.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from ecomlm.models import llm_path

    tok = AutoTokenizer.from_pretrained(llm_path("smollm2"))
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def make_lora_run(base: str, out: Path, task: str = "esci", r: int = 16) -> Path:
    """A lora run folder: PEFT adapter on ``base`` (default init) + method.json + config.yaml."""
    from peft import LoraConfig, get_peft_model

    from ecomlm.io import write_json, write_yaml
    from ecomlm.methods.llm.causal_lm import load_llm
    from ecomlm.runs import RunSpec

    model, _ = load_llm(base)
    lora = LoraConfig(r=r, lora_alpha=r, target_modules="all-linear", task_type="CAUSAL_LM")
    get_peft_model(model, lora).save_pretrained(out / "model" / "adapter")
    config = {"base_model": base, "r": r, "alpha": r, "target_modules": "all-linear"}
    write_json(
        out / "model" / "method.json",
        {"method": "lora", "task": task, "task_options": {}, "config": config},
    )
    write_yaml(out / "config.yaml", dataclasses.asdict(RunSpec(task=task, method="lora")))
    return out


BAD_INPUTS = (  # content errors the server must answer with a 422, never a 5xx
    {"query": "", "product_title": "shoes"},
    {"query": "   ", "product_title": "shoes"},
    {"query": "red\ud800", "product_title": "shoes"},
    {"query": "red\x00shoes", "product_title": "shoes"},
    {"product_title": "no query"},
)


def mixed_bodies(model: str, n: int, bad: float, heavy: float, max_tokens: int) -> list[tuple]:
    """``n`` requests: light ESCI predictions, with every ``1/bad``-th a content error and
    every ``1/heavy``-th a long chat prompt asking for many tokens (kind is the 3rd item)."""
    out = []
    for i, (path, body) in enumerate(request_bodies("predict", model, n, max_tokens)):
        if bad and i % round(1 / bad) == 1:
            out.append((path, {"model": model, "input": BAD_INPUTS[i % len(BAD_INPUTS)]}, "bad"))
        elif heavy and i % round(1 / heavy) == 2:
            words = " ".join(f"red leather shoes size {k}" for k in range(150))
            chat = {"model": model, "messages": [{"role": "user", "content": words}],
                    "max_tokens": 64}  # fmt: skip
            out.append(("/v1/chat/completions", chat, "heavy"))
        else:
            out.append((path, body, "light"))
    return out


def request_bodies(endpoint: str, model: str, n: int, max_tokens: int) -> list[tuple[str, dict]]:
    bodies = []
    for i in range(n):
        query, title = QUERIES[i % len(QUERIES)]
        if endpoint == "chat":
            content = f"Is '{title}' a good match for the search '{query}'? Answer briefly."
            body = {
                "model": model,
                "messages": [{"role": "user", "content": content}],
                "max_tokens": max_tokens,
            }
            bodies.append(("/v1/chat/completions", body))
        else:
            body = {"model": model, "input": {"query": query, "product_title": title}}
            bodies.append(("/v1/tasks/esci/predict", body))
    return bodies


class Server:
    """``python -m ecomlm.cli serve ...`` as a child process we start and stop ourselves."""

    def __init__(self, args: list[str], log_path: Path, startup_timeout: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "ecomlm.cli", "serve", "--host", "127.0.0.1"]
        self.cmd = [*cmd, "--port", str(self.port), *args]
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self._wait_until_up(log_path, startup_timeout)
        except BaseException:  # incl. SIGTERM -> SystemExit: never leave the child behind
            self.stop()
            raise

    def _wait_until_up(self, log_path: Path, startup_timeout: float) -> None:
        deadline = time.time() + startup_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {log_path}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"server not up after {startup_timeout}s; see {log_path}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if not self.log.closed:
            self.log.close()


def server_side(log_path: Path, path_prefix: str = "/v1/") -> dict:
    """Percentiles of the server's own per-request log: queue wait, model call, and the
    rest (HTTP, validation, JSON) — separates serving overhead from model time."""
    parts: dict[str, list[float]] = {"queue_ms": [], "model_ms": [], "overhead_ms": []}
    for line in log_path.read_text().splitlines():
        if not line.startswith("{"):
            continue
        rec = json.loads(line)
        if rec.get("event") != "request" or not str(rec.get("path")).startswith(path_prefix):
            continue
        if "model_ms" not in rec:
            continue
        parts["queue_ms"].append(rec["queue_ms"])
        parts["model_ms"].append(rec["model_ms"])
        parts["overhead_ms"].append(rec["latency_ms"] - rec["queue_ms"] - rec["model_ms"])
    out = {}
    for key, values in parts.items():
        values.sort()
        if values:
            out[key] = {
                "p50": round(values[len(values) // 2], 1),
                "p95": round(values[min(len(values) - 1, int(0.95 * len(values)))], 1),
                "max": round(values[-1], 1),
            }
    return out


async def load(url: str, bodies: list, concurrency: int, cap_s: float, timeout_s: float) -> dict:
    """Send every body once (``concurrency`` in flight); results within ``cap_s`` seconds."""
    latencies: list[float] = []
    by_kind: dict[str, list[float]] = {}
    kind_status: dict[str, dict[str, int]] = {}
    statuses: dict[str, int] = {}
    errors: list[str] = []
    semaphore = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits) as client:

        async def one(path: str, body: dict, kind: str = "light") -> None:
            async with semaphore:
                start = time.perf_counter()
                try:  # json.dumps escapes lone surrogates as a client's encoder would
                    r = await client.post(path, content=json.dumps(body),
                                          headers={"Content-Type": "application/json"})  # fmt: skip
                except httpx.HTTPError as e:
                    errors.append(f"{type(e).__name__}: {e}")
                    return
                latencies.append(time.perf_counter() - start)
                by_kind.setdefault(kind, []).append(time.perf_counter() - start)
                counts = kind_status.setdefault(kind, {})
                counts[str(r.status_code)] = counts.get(str(r.status_code), 0) + 1
                statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1

        start = time.perf_counter()
        tasks = [asyncio.create_task(one(*item)) for item in bodies]
        done, pending = await asyncio.wait(tasks, timeout=cap_s)
        for t in pending:
            t.cancel()
        wall = time.perf_counter() - start
        health = (await client.get("/health")).json()

    answered = sum(statuses.values())
    lat = sorted(latencies)

    def pct(q: float) -> float:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 1) if lat else float("nan")

    return {
        "requests": len(bodies),
        "answered": answered,
        "lost": len(bodies) - answered,
        "status_counts": statuses,
        "server_errors_5xx": sum(v for k, v in statuses.items() if k.startswith("5")),
        "client_errors": errors[:5],
        "cancelled_at_cap": len(pending),
        "wall_s": round(wall, 2),
        "throughput_rps": round(answered / wall, 3),
        "latency_ms": {
            "p50": pct(0.50),
            "p95": pct(0.95),
            "p99": pct(0.99),
            "mean": round(statistics.fmean(lat) * 1000, 1) if lat else float("nan"),
            "max": round(lat[-1] * 1000, 1) if lat else float("nan"),
        },
        "server_batching": health.get("batching", {}),
        "by_kind": {
            kind: {
                "requests": len(v),
                "status_counts": kind_status[kind],
                "p50_ms": _pct(v, 0.50),
                "p99_ms": _pct(v, 0.99),
            }
            for kind, v in by_kind.items()
        },  # fmt: skip
    }


def _pct(values: list[float], q: float) -> float:
    lat = sorted(values)
    return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 1) if lat else float("nan")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", help="serve this run instead of a fresh SmolLM2 LoRA run")
    p.add_argument(
        "--base",
        default="smollm2",
        help="base LLM for the generated LoRA run; 'tiny' = a random 2-layer Llama",
    )
    p.add_argument("--endpoint", choices=["chat", "predict"], default="chat")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--max-tokens", type=int, default=8, help="chat completion length")
    p.add_argument("--max-batch-size", type=int, default=16, help="batched mode's batch size")
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--cap-s", type=float, default=600.0, help="hard time cap per mode")
    p.add_argument("--timeout-s", type=float, default=300.0, help="server per-request timeout")
    p.add_argument("--startup-timeout-s", type=float, default=900.0)
    p.add_argument("--modes", default="batched,one_by_one")
    p.add_argument("--bad", type=float, default=0.0, help="share of content-error requests")
    p.add_argument("--heavy", type=float, default=0.0, help="share of long chat requests")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serve.json"))
    p.add_argument(
        "--name", default=None, help="scenario key in --out (default: <base>_<endpoint>)"
    )
    return p.parse_args()


def run_mode(args: argparse.Namespace, mode: str, run: Path, work: Path, bodies, warmup) -> dict:
    """One server (batched or one request at a time) under the bounded load."""
    batch = args.max_batch_size if mode == "batched" else 1
    server_args = [
        "--run",
        str(run),
        "--max-batch-size",
        str(batch),
        "--max-wait-ms",
        str(args.max_wait_ms if mode == "batched" else 0),
        "--timeout",
        str(args.timeout_s),
    ]
    print(f"[bench] {mode}: starting server (max_batch_size={batch})", flush=True)
    server = Server(server_args, work / f"server_{mode}.log", args.startup_timeout_s)
    try:
        for path, body in warmup:
            httpx.post(server.url + path, json=body, timeout=args.timeout_s)
        r = asyncio.run(load(server.url, bodies, args.concurrency, args.cap_s, args.cap_s))
        r["server_command"] = shlex.join(server.cmd[1:])
    finally:
        server.stop()
    r["server_log"] = server_side(work / f"server_{mode}.log")
    print(
        f"[bench] {mode}: {r['answered']}/{r['requests']} answered, "
        f"5xx={r['server_errors_5xx']}, lost={r['lost']}, {r['throughput_rps']} req/s, "
        f"p50={r['latency_ms']['p50']}ms p95={r['latency_ms']['p95']}ms",
        flush=True,
    )
    return r


def main() -> int:
    args = parse_args()
    # SIGTERM -> SystemExit, so the finally blocks stop the server we started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from ecomlm.io import write_json

    work = Path(tempfile.mkdtemp(prefix="ecomlm-bench-serve-"))
    if args.run:
        run = Path(args.run)
    else:
        base = make_tiny_base(work / "tiny_base") if args.base == "tiny" else args.base
        run = make_lora_run(base, work / f"{args.base}_lora")
    model_name = run.name
    if args.bad or args.heavy:
        bodies = mixed_bodies(model_name, args.requests, args.bad, args.heavy, args.max_tokens)
    else:
        bodies = request_bodies(args.endpoint, model_name, args.requests, args.max_tokens)
    warmup = request_bodies(args.endpoint, model_name, 2, args.max_tokens)
    results = {
        mode: run_mode(args, mode, run, work, bodies, warmup) for mode in args.modes.split(",")
    }
    out = {
        "benchmark": "ecomlm serve bounded load test on 127.0.0.1",
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "model": str(run) if args.run else f"{args.base} + LoRA r=16 all-linear (PEFT init)",
        "endpoint": args.endpoint,
        "mix": {"bad": args.bad, "heavy": args.heavy} if args.bad or args.heavy else None,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "max_tokens": args.max_tokens if args.endpoint == "chat" else None,
        "machine": {
            "cpu_count": os.cpu_count(),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "modes": results,
    }
    if {"batched", "one_by_one"} <= set(results):
        b, o = results["batched"], results["one_by_one"]
        out["speedup_throughput"] = round(b["throughput_rps"] / max(o["throughput_rps"], 1e-9), 2)
        out["speedup_p50_latency"] = round(
            o["latency_ms"]["p50"] / max(b["latency_ms"]["p50"], 1e-9), 2
        )
    # --out holds one entry per scenario; re-running a scenario replaces its entry.
    name = args.name or f"{Path(args.run).name if args.run else args.base}_{args.endpoint}"
    existing = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    write_json(args.out, {**existing, name: out})
    print(json.dumps({k: v for k, v in out.items() if k != "modes"}, indent=2))
    bad = any(r["server_errors_5xx"] or r["lost"] for r in results.values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
