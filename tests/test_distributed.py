"""2-process DDP (gloo, CPU) LoRA training matches the 1-process run; only rank 0 writes.

Same global batches on both sides: LoRA builds global batches of
``batch_size * world`` examples exactly as one process would, and rank r takes
every world-th example of each. So 1 process x batch 4 and 2 processes x batch 2
step on the same 4 examples. DDP averages the ranks' mean losses while one
process takes the token-weighted mean, so the two agree exactly only when every
example has the same number of answer tokens: the training set is an ESCI table
whose train rows are all "Exact" (different queries and titles, so lengths and
losses vary). With dropout off the 2-process run must then follow the 1-process
loss curve and end at the same adapter, up to float summation order.

Which process writes is observed with a ``sys.addaudithook`` installed through a
``sitecustomize`` module: every file opened for writing, created, renamed or
removed under the run folder is logged per rank.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from ecomlm.runs import RunSpec, execute_run
from ecomlm.scale.train_script import load_spec, mean_history

ROOT = Path(__file__).resolve().parents[1]

AUDIT_HOOK = textwrap.dedent(
    """
    import os, sys
    _watch = os.environ.get("ECOMLM_AUDIT_WATCH")
    _log = os.environ.get("ECOMLM_AUDIT_LOG")
    _busy = [False]
    _WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def _is_write(event, args):
        if event == "open":
            mode, flags = args[1], args[2]
            if isinstance(mode, str):
                return any(c in mode for c in "wax+")
            return isinstance(flags, int) and bool(flags & _WRITE_FLAGS)
        return event in ("os.rename", "os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree")

    def _hook(event, args):
        if _busy[0] or not _watch or not _log or not args:
            return
        path = args[0]
        if not isinstance(path, (str, bytes, os.PathLike)):
            return
        path = os.fsdecode(path)
        if not path.startswith(_watch) or not _is_write(event, args):
            return
        _busy[0] = True
        try:
            rank = os.environ.get("RANK", "launcher")
            with open(f"{_log}.{rank}", "a") as f:
                f.write(f"{event} {path}\\n")
        finally:
            _busy[0] = False

    if _watch and _log:
        sys.addaudithook(_hook)

    # ECOMLM_FAST_CLOCK=N: rank 1's perf_counter runs N times faster (clock skew)
    if os.environ.get("ECOMLM_FAST_CLOCK") and os.environ.get("RANK") == "1":
        import time
        _real, _speed = time.perf_counter, float(os.environ["ECOMLM_FAST_CLOCK"])
        _t0 = _real()
        time.perf_counter = lambda: _t0 + (_real() - _t0) * _speed
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def esci_table(path: Path) -> Path:
    """16 train rows, all Exact (equal answer length); 4 dev and 4 test rows."""
    words = ["red", "blue", "black", "white", "cotton", "leather", "phone", "case"]
    things = ["shoes", "shirt", "charger", "case 2 pack"]
    rows = ["query,product_title,product_brand,esci_label,split"]
    for i in range(24):
        split = "train" if i < 16 else "dev" if i < 20 else "test"
        label = "E" if split == "train" else "ESCI"[i % 4]
        title = " ".join(words[j % 8] for j in range(i, i + 1 + i % 5)) + " " + things[i % 4]
        rows.append(f"{words[i % 8]} {things[i % 4]} {i},{title},brand{i % 3},{label},{split}")
    path.write_text("\n".join(rows) + "\n")
    return path


def lora_spec(tiny_llama: str, source: str, work_dir: Path, batch_size: int) -> RunSpec:
    return RunSpec(
        task="esci",
        method="lora",
        source=source,
        seed=0,
        method_config=dict(
            base_model=tiny_llama, r=4, alpha=8, dropout=0.0, lr=2e-2, batch_size=batch_size,
            max_steps=3, warmup_ratio=0.0, max_length=1024, log_every=0,
            checkpoint_every=1, work_dir=str(work_dir), eval_batch_size=4,
            mixed_precision="no",  # the comparison is exact only in float32
        ),
    )  # fmt: skip


def adapter_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run_dir / "model" / "adapter" / "adapter_model.safetensors"))


def read_log(run_dir: Path) -> list[dict]:
    lines = (run_dir / "train_log.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def launch_two_processes(
    spec: RunSpec, folder: Path, tmp_path: Path, env_extra: dict[str, str], timeout: int = 300
) -> subprocess.CompletedProcess:
    """Run ``spec`` on 2 gloo processes (torchrun) into ``folder / "run"``, with the
    audit/clock ``sitecustomize`` on the path; asserts that the launch succeeded."""
    spec_file = folder / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(dataclasses.asdict(spec)))
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir(exist_ok=True)
    (hook_dir / "sitecustomize.py").write_text(AUDIT_HOOK)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(hook_dir), os.environ.get("PYTHONPATH", "")]),
        "ECOMLM_AUDIT_WATCH": str(folder),
        **env_extra,
    }
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        "-m", "ecomlm.scale.train_script", "--spec", str(spec_file), "--out", str(folder / "run"),
    ]  # fmt: skip
    with subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as popen:  # fmt: skip
        try:
            stdout, stderr = popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # SIGTERM: torchrun stops its workers (each in a session of its own) before it
            # exits; a SIGKILL would leave them running, holding the pipes open
            popen.terminate()
            stdout, stderr = popen.communicate(timeout=60)
            pytest.fail(f"2-process run hung for {timeout} s:\n{stdout[-3000:]}{stderr[-3000:]}")
    assert popen.returncode == 0, stdout[-3000:] + stderr[-3000:]
    return subprocess.CompletedProcess(cmd, popen.returncode, stdout, stderr)


def test_mean_history_averages_ranks_and_checks_steps():
    a = [{"step": 1, "loss": 2.0, "lr": 0.1}, {"step": 2, "loss": 1.0, "lr": 0.1}]
    b = [{"step": 1, "loss": 4.0, "lr": 0.1}, {"step": 2, "loss": 3.0, "lr": 0.1}]
    assert [r["loss"] for r in mean_history([a, b])] == [3.0, 2.0]
    assert mean_history([[]]) == []
    with pytest.raises(RuntimeError, match="different numbers of steps"):
        mean_history([a, b[:1]])


def test_load_spec_names_unknown_fields(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("task: esci\nmethod: lora\nmethod_cfg: {}\n")
    with pytest.raises(ValueError, match="method_cfg"):
        load_spec(path)


def test_two_process_ddp_matches_one_process(tiny_llama, tmp_path):
    source = f"esci:{esci_table(tmp_path / 'esci.csv')}"
    # reference: 1 process, batch 4 (in this pytest process)
    one = tmp_path / "one"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        execute_run(lora_spec(tiny_llama, source, one / "work", 4), one / "run")
    finally:
        torch.set_num_threads(threads)
    ref = read_log(one / "run")

    # 2 processes (gloo), batch 2 per rank
    two = tmp_path / "two"
    two.mkdir()
    audit = tmp_path / "audit.log"
    spec2 = lora_spec(tiny_llama, source, two / "work", 2)
    proc = launch_two_processes(spec2, two, tmp_path, {"ECOMLM_AUDIT_LOG": str(audit)})
    assert "2 procs" in proc.stdout

    got = read_log(two / "run")
    assert [r["step"] for r in got] == [r["step"] for r in ref] == [1, 2, 3]
    # the ranks agree on the (all-reduced) loss of each global batch
    for row in got:
        assert len(row["rank_losses"]) == 2
    ref_loss = torch.tensor([r["loss"] for r in ref])
    got_loss = torch.tensor([r["loss"] for r in got])
    assert (ref_loss[0] - ref_loss[-1]).abs() > 1e-2, "training did not move the loss"
    torch.testing.assert_close(got_loss, ref_loss, rtol=0, atol=1e-4)
    # and end at the same adapter
    w1, w2 = adapter_weights(one / "run"), adapter_weights(two / "run")
    assert w1.keys() == w2.keys() and w1
    for key in w1:
        torch.testing.assert_close(w2[key], w1[key], rtol=1e-4, atol=1e-5, msg=key)
    assert json.loads((two / "run" / "cost.json").read_text())["world_size"] == 2
    assert (two / "run" / "metrics.json").exists()

    # rank 0 wrote checkpoints and the run record; rank 1 wrote nothing
    rank0 = Path(f"{audit}.0").read_text()
    assert "checkpoint" in rank0 and "metrics.json" in rank0 and "adapter" in rank0
    rank1 = Path(f"{audit}.1")
    assert not rank1.exists(), f"rank 1 wrote:\n{rank1.read_text()}"


def test_ranks_stop_together_when_one_clock_runs_out_first(tiny_llama, tmp_path):
    """Each rank reads its own clock. Rank 1's runs 10^6 times fast, so its wall budget
    is spent at step 1 while rank 0's never is: a rank stopping alone would leave the
    other waiting in its next gradient all-reduce. Both must stop at step 1, as one
    budget-stopped fit whose checkpoint is kept for a raised budget to continue."""
    source = f"esci:{esci_table(tmp_path / 'esci.csv')}"
    folder = tmp_path / "skewed"
    folder.mkdir()
    spec = lora_spec(tiny_llama, source, folder / "work", 2)
    spec.method_config.update(max_steps=6, max_seconds=60)
    launch_two_processes(spec, folder, tmp_path, {"ECOMLM_FAST_CLOCK": "1e6"}, timeout=240)
    assert [r["step"] for r in read_log(folder / "run")] == [1]
    record = json.loads((folder / "run" / "training.json").read_text())
    assert record["stop_reason"] == "budget" and record["steps"] == 1
    kept = list((folder / "work").rglob("trainer_state.pt"))
    assert len(kept) == 1, "the clock-stopped fit's checkpoint is kept"
