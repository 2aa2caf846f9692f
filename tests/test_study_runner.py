"""Study runner: dependency order, failures, resume after SIGKILL, and the report.

The runs use a tiny fake method (registered only inside these tests under the
names bert / lora / icl / merge, declaring what the real method of that name declares,
so the grid's families and dependencies are exercised) plus the real ``classical``
method, on a small in-memory ESCI data set patched in for ``ecomlm.runs.load_run_data``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

FAKE_MODULE = textwrap.dedent(
    '''
    """A fake method and data for the study tests (written to a temp dir by the tests)."""
    import os
    import signal
    import zlib
    from dataclasses import asdict, dataclass, field
    from pathlib import Path

    from ecomlm.io import read_json, write_json
    from ecomlm.methods.base import config_from_dict, method_header
    from ecomlm.tasks import get_task
    from ecomlm.tasks.base import Prediction
    from ecomlm.tasks.esci import ESCI_LABELS, EsciExample
    from ecomlm.tasks.queryner import NerExample


    def _examples(n, offset):
        out = []
        for i in range(n):
            j = offset + i
            label = ESCI_LABELS[0] if j % 3 else ESCI_LABELS[1 + j % 3 if j % 9 else 3]
            out.append(EsciExample(query=f"red shoe {j}", product_title=f"shoe {j % 7} red",
                                   label=label, product_brand=f"b{j % 5}"))
        return out


    def _ner(n, offset):
        return [NerExample(tokens=["red", f"shoe{offset + i}", "nike"],
                           tags=["B-color", "B-core_product_type", "B-creator"])
                for i in range(n)]


    def fake_data(spec):
        make = _examples if spec.task == "esci" else _ner
        train = make(300, 0)
        if isinstance(spec.train_size, int):
            train = train[: spec.train_size]
        test = make(80, 5000)
        if spec.max_eval:
            test = test[: spec.max_eval]
        return {"train": train, "dev": make(30, 9000), "test": test}


    @dataclass
    class FakeConfig:
        quality: float = 0.8  # share of test examples predicted correctly
        crash: str = ""  # "raise": fit raises; "kill": fit SIGKILLs the process
        crash_if: str = ""  # crash only while this file exists
        log: str = ""  # append one line per fit (counts re-runs)
        # keys the study runner fills for lora / merge families
        mix_tasks: dict = field(default_factory=dict)
        adapter_path: str = ""
        adapters: list = field(default_factory=list)
        work_dir: str = ""
        k: int = 0
        seed: int = 0


    class FakeMethod:
        name = "fake"
        Config = FakeConfig

        def __init__(self, task, config=None):
            self.task, self.config, self.n = task, config or FakeConfig(), 0

        def fit(self, train, dev=None):
            c = self.config
            if c.log:
                with open(c.log, "a") as f:
                    f.write(f"{self.task.name} {len(train)} {c.quality} {c.k}\\n")
            if c.crash and (not c.crash_if or Path(c.crash_if).exists()):
                if c.crash == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                raise RuntimeError("fake failure in fit")
            for path in c.adapters + ([c.adapter_path] if c.adapter_path else []):
                if not (Path(path) / "metrics.json").exists():
                    raise RuntimeError(f"dependency {path} not finished")
            self.n = len(train)
            return self

        def predict(self, examples):
            c = self.config
            q = c.quality + 0.05 * c.k - (0.1 if self.n < 50 else 0.0) + 0.02 * len(c.adapters)
            out = []
            for ex in examples:
                gold = self.task.gold(ex)
                key = ex.query if hasattr(ex, "query") else " ".join(ex.tokens)
                h = zlib.crc32(key.encode()) % 1000 / 1000
                if isinstance(gold, list):
                    other = ["O"] * len(gold)
                else:
                    other = ESCI_LABELS[(ESCI_LABELS.index(gold) + 1) % 4]
                out.append(Prediction(gold if h < q else other, True, None))
            return out

        def save(self, path):
            write_json(Path(path) / "method.json", method_header(self))

        @classmethod
        def load(cls, path):
            h = read_json(Path(path) / "method.json")
            task = get_task(h["task"], **h["task_options"])
            return cls(task, config_from_dict(FakeConfig, h["config"]))


    def _standing_in(name):
        """FakeMethod declaring what the real method ``name`` declares (MethodInfo)."""
        from ecomlm.methods import method_info

        if name == "fake":
            return "study_fake:FakeMethod"
        cls = type(f"Fake_{name}", (FakeMethod,), asdict(method_info(name)))
        globals()[cls.__name__] = cls
        return f"study_fake:{cls.__name__}"


    def install(patch_item=None, patch_attr=None):
        """Register the fake under several method names and patch the data loader."""
        from ecomlm import methods, runs

        for name in ("fake", "bert", "lora", "icl", "merge"):
            target = _standing_in(name)
            if patch_item:
                patch_item(methods._REGISTRY, name, target)
            else:
                methods._REGISTRY[name] = target
        if patch_attr:
            patch_attr(runs, "load_run_data", fake_data)
        else:
            runs.load_run_data = fake_data
    '''
)

DRIVER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[3])
    import study_fake
    study_fake.install()
    from ecomlm.study.config import load_study
    from ecomlm.study.runner import run_study
    run_study(load_study(sys.argv[1]), sys.argv[2], write_report=False)
    """
)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    mod_dir = tmp_path / "fakemod"
    mod_dir.mkdir()
    (mod_dir / "study_fake.py").write_text(FAKE_MODULE)
    monkeypatch.syspath_prepend(str(mod_dir))
    sys.modules.pop("study_fake", None)
    import study_fake

    study_fake.install(monkeypatch.setitem, monkeypatch.setattr)
    return mod_dir


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _rows(study_dir: Path) -> dict[str, dict]:
    lines = (study_dir / "results.jsonl").read_text().splitlines()
    return {r["id"]: r for r in map(json.loads, lines)}


def _fits(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_resume_after_sigkill(tmp_path, fake):
    from ecomlm.study.config import load_study
    from ecomlm.study.grid import expand
    from ecomlm.study.runner import run_study

    flag, log = tmp_path / "crash.flag", tmp_path / "fits.log"
    flag.touch()
    data = {
        "name": "crashy",
        "train_sizes": [16, 32],
        "max_eval": 20,
        "bootstrap": 0,
        "tasks": [{"name": "esci"}],
        "methods": [
            {"name": "fake", "label": "good", "config": {"log": str(log)}},
            {"name": "fake", "label": "killer",
             "config": {"crash": "kill", "crash_if": str(flag), "log": str(log)}},
            {"name": "fake", "label": "after", "config": {"quality": 0.5, "log": str(log)}},
        ],
    }  # fmt: skip
    cfg_path = _write(tmp_path, data)
    study_dir = tmp_path / "runs" / "crashy"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    path = os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    proc = subprocess.run(
        [sys.executable, str(driver), str(cfg_path), str(study_dir), str(fake)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,  # seconds normally; generous for a heavily loaded CI machine
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    runs = expand(load_study(cfg_path))
    ids = {(r.label, r.train_size): r.id for r in runs}
    rows = _rows(study_dir)
    # the two runs finished before the kill are intact and recorded
    for size in (16, 32):
        assert rows[ids["good", size]]["status"] == "done"
        assert (study_dir / ids["good", size] / "metrics.json").exists()
    # the run in progress left no finished marker; later runs never started
    killed = study_dir / ids["killer", 16]
    assert (killed / "config.yaml").exists() and not (killed / "metrics.json").exists()
    assert ids["killer", 16] not in rows and ids["after", 16] not in rows
    mtimes = {s: (study_dir / ids["good", s] / "metrics.json").stat().st_mtime_ns for s in (16, 32)}
    assert len(_fits(log)) == 3

    # resume: only the missing runs execute
    flag.unlink()
    summary = run_study(load_study(cfg_path), study_dir, write_report=False, log=lambda s: None)
    assert summary["done"] == 4 and summary["failed"] == 0
    fits = _fits(log)[3:]
    assert sorted(fits) == sorted(
        ["esci 16 0.8 0", "esci 32 0.8 0", "esci 16 0.5 0", "esci 32 0.5 0"]
    )
    assert all(r["status"] == "done" for r in _rows(study_dir).values())
    assert len(_rows(study_dir)) == 6
    for s in (16, 32):
        assert (study_dir / ids["good", s] / "metrics.json").stat().st_mtime_ns == mtimes[s]
    # a third invocation has nothing to do
    summary = run_study(load_study(cfg_path), study_dir, write_report=False, log=lambda s: None)
    assert summary["done"] == 0 and len(_fits(log)) == 7


def test_failure_recorded_dependents_skipped_then_rerun(tmp_path, fake):
    from ecomlm.study.config import load_study
    from ecomlm.study.runner import run_study

    flag, log = tmp_path / "fail.flag", tmp_path / "fits.log"
    flag.touch()
    data = {
        "name": "deps",
        "train_sizes": [32],
        "max_eval": 20,
        "bootstrap": 0,
        "tasks": [{"name": "esci"}, {"name": "queryner"}],
        "methods": [
            {"name": "lora", "tasks": ["esci"], "config": {"log": str(log)}},
            {"name": "lora", "label": "lora-b", "tasks": ["esci"],
             "config": {"crash": "raise", "crash_if": str(flag), "log": str(log)}},
        ],
        "merges": [{"label": "soup", "adapters": ["lora", "lora-b"], "config": {"log": str(log)}}],
    }  # fmt: skip
    cfg_path = _write(tmp_path, data)
    study_dir = tmp_path / "study"
    summary = run_study(load_study(cfg_path), study_dir, write_report=False, log=lambda s: None)
    assert (summary["done"], summary["failed"], summary["skipped"]) == (1, 1, 1)
    rows = _rows(study_dir)
    failed = next(r for r in rows.values() if r["status"] == "failed")
    assert failed["label"] == "lora-b" and "RuntimeError: fake failure in fit" in failed["error"]
    assert "Traceback" in (study_dir / failed["id"] / "error.txt").read_text()
    skipped = next(r for r in rows.values() if r["status"] == "skipped")
    assert skipped["family"] == "merge" and failed["id"] in skipped["error"]

    flag.unlink()
    summary = run_study(load_study(cfg_path), study_dir, write_report=False, log=lambda s: None)
    assert (summary["done"], summary["failed"], summary["skipped"]) == (2, 0, 0)
    rows = _rows(study_dir)
    assert all(r["status"] == "done" and not r["error"] for r in rows.values())
    assert not (study_dir / failed["id"] / "error.txt").exists()
    merged = next(r for r in rows.values() if r["family"] == "merge")
    config = yaml.safe_load((study_dir / merged["id"] / "config.yaml").read_text())
    adapters = config["method_config"]["adapters"]
    assert [Path(a).name for a in adapters] == merged["deps"]  # resolved to run folders
    assert config["method_config"]["work_dir"] == str((study_dir / merged["id"]).resolve())


def test_second_runner_on_the_same_folder_is_refused(tmp_path, fake):
    import fcntl

    from ecomlm.study.config import StudyConfigError, parse_study
    from ecomlm.study.runner import run_study

    cfg = parse_study({"name": "x", "tasks": [{"name": "esci"}], "methods": [{"name": "fake"}]})
    study_dir = tmp_path / "x"
    study_dir.mkdir()
    with open(study_dir / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(StudyConfigError, match="another `ecomlm study` is running"):
            run_study(cfg, study_dir, write_report=False, log=lambda s: None)
    assert not (study_dir / "results.jsonl").exists()


def test_subprocess_executor_and_dry_run(tmp_path, fake, capsys):
    from ecomlm.study.config import load_study
    from ecomlm.study.runner import run_study

    data = {
        "name": "iso",
        "train_sizes": [16],
        "max_eval": 10,
        "bootstrap": 0,
        "tasks": [{"name": "esci"}],
        "methods": [{"name": "fake"}],
    }
    cfg = load_study(_write(tmp_path, data))
    lines: list[str] = []
    run_study(cfg, tmp_path / "iso", dry_run=True, log=lines.append)
    assert "1 runs, 1 to run, estimated" in lines[-1]
    assert not (tmp_path / "iso" / "results.jsonl").exists()
    # the worker imports the fake from PYTHONPATH
    os.environ["PYTHONPATH"] = str(fake) + os.pathsep + os.environ.get("PYTHONPATH", "")
    try:
        # the child has no patched registry: install through a sitecustomize-like hook
        (fake / "sitecustomize.py").write_text("import study_fake\nstudy_fake.install()\n")
        summary = run_study(cfg, tmp_path / "iso", executor="subprocess", write_report=False)
    finally:
        os.environ["PYTHONPATH"] = os.environ["PYTHONPATH"].split(os.pathsep, 1)[1]
    assert summary["done"] == 1
    lines = []
    run_study(cfg, tmp_path / "iso", dry_run=True, log=lines.append)
    assert "1 runs, 0 to run" in lines[-1]


def test_report_on_tiny_study(tmp_path, fake):
    from ecomlm.study.config import load_study
    from ecomlm.study.runner import run_study

    data = {
        "name": "tiny",
        "train_sizes": [32, 128],
        "max_eval": 60,
        "bootstrap": 100,
        "bootstrap_budget_s": 0,
        "tasks": [{"name": "esci"}],
        "methods": [
            {"name": "classical", "config": {"tune_c": False}},
            {"name": "bert", "config": {"quality": 0.7}},
            {"name": "lora", "config": {"quality": 0.9}},
            {"name": "icl", "k": [0, 2], "config": {"quality": 0.3}},
        ],
        "mixed": [{"tasks": ["esci", "queryner"], "train_sizes": [128],
                   "config": {"quality": 0.8}}],
        "merges": [{"label": "merge", "adapters": ["lora"], "across_tasks": True,
                    "tasks": ["esci", "queryner"], "train_sizes": [128]}],
    }  # fmt: skip
    data["tasks"].append({"name": "queryner"})
    for entry in data["methods"]:
        entry["tasks"] = ["esci"]
    data["methods"][2]["tasks"] = ["esci", "queryner"]  # lora: adapters of both tasks
    cfg = load_study(_write(tmp_path, data))
    study_dir = tmp_path / "tiny"
    summary = run_study(cfg, study_dir, log=lambda s: None)
    # 8 esci runs + 2 queryner lora + mixed (train on esci, eval on queryner) + 2 merges
    assert summary["failed"] == 0 and summary["done"] == 14, summary
    md = Path(summary["report"]).read_text()
    html = (study_dir / "report" / "report.html").read_text()
    assert "## Main results" in md
    main = md.split("## Main results")[1].split("##")[0]
    assert "| method | esci (accuracy) |" in main
    lora_row = next(line for line in main.splitlines() if line.startswith("| lora |"))
    assert "**" in lora_row and "[" in lora_row  # best in bold, with a CI
    for section in ("Findings", "Key comparisons", "Learning curves", "k-shot curve", "Cost"):
        assert section in md
    findings = md.split("## Findings")[1].split("\n## ")[0]
    assert "lora beats bert (lora − bert = +" in findings, findings
    # ICL scores under always answering the majority label: flagged, no claim drawn
    assert "inconclusive:** " in findings
    assert "lora vs icl-k2 — icl-k2 is suspect: below the majority" in findings
    assert "**SUSPECT**: below the majority baseline" in md
    assert "## Confusion matrices" in md and "| gold \\ predicted |" in md
    assert "(figures/learning_curves.png)" in md
    variants = md.split("## Single-task vs mixed-task vs merged LoRA")[1].split("\n## ")[0]
    assert "| task | n | lora | lora-mixed | merge |" in variants
    assert "lora-mixed is better than single-task lora at n=128" in md or (
        "lora-mixed is worse than single-task lora at n=128" in md
    )
    # the fake adapters are not PEFT folders: the similarity section says why it is missing
    assert "## Adapter similarity" in md and "Skipped: adapter analysis failed" in md
    assert (study_dir / "report" / "figures" / "learning_curves.png").stat().st_size > 1000
    assert html.count("src='data:image/png;base64,") >= 2
    assert "src='figures" not in html and "<link" not in html and "<script" not in html
    # `ecomlm report` also reads a plain folder of run folders (no plan, no store)
    import shutil

    from ecomlm.study.report import write_report

    loose = tmp_path / "loose"
    for run_dir in study_dir.glob("esci-*-n128-*"):
        shutil.copytree(run_dir, loose / run_dir.name)
    loose_md = write_report(loose, tmp_path / "loose-report", n_boot=100).read_text()
    assert "| method | esci (accuracy) |" in loose_md and "| merge |" in loose_md
    assert "| lora-mixed |" in loose_md and "| icl-k2 |" in loose_md
    # stats cached per run, with the paired samples
    stats = json.loads(next(study_dir.glob("esci-lora-n128-*/stats.json")).read_text())
    assert stats["n_boot"] == 100 and len(stats["main_samples"]) == 100
    m = stats["metrics"]["accuracy"]
    assert m["lo"] <= m["value"] <= m["hi"]


def test_report_metric_chosen_per_task(tmp_path, fake):
    """``tasks[].metric`` makes the report rank, compare, flag and export by that metric."""
    import yaml

    from ecomlm.study.config import load_study
    from ecomlm.study.report import load_runs, run_summaries, write_report
    from ecomlm.study.runner import run_study

    data = {"name": "macro", "train_sizes": [64], "max_eval": 60, "bootstrap": 50,
            "bootstrap_budget_s": 0, "tasks": [{"name": "esci", "metric": "f1_macro"}],
            "methods": [{"name": "classical", "config": {"tune_c": False}},
                        {"name": "lora", "config": {"quality": 0.9}}]}  # fmt: skip
    study_dir = tmp_path / "macro"
    summary = run_study(load_study(_write(tmp_path, data)), study_dir, log=lambda s: None)
    assert summary["failed"] == 0
    md = Path(summary["report"]).read_text()
    assert "| method | esci (f1_macro) |" in md and "**esci** (f1_macro)" in md
    stats = json.loads(next(study_dir.glob("esci-lora-*/stats.json")).read_text())
    assert stats["main_metric"] == "f1_macro" and len(stats["main_samples"]) == 50
    records = run_summaries(load_runs(study_dir, n_boot=50))
    for r in records:
        assert r["metric"] == "f1_macro" and r["score"] == r["metrics"]["f1_macro"]
        assert r["majority_baseline"] < 0.3  # the constant answer's macro-F1, not accuracy
    config = yaml.safe_load((study_dir / "study.yaml").read_text())
    config["tasks"][0]["metric"] = "f1_macr"
    (study_dir / "study.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=r"study.yaml: tasks: esci: metric 'f1_macr' is not"):
        write_report(study_dir, tmp_path / "r", n_boot=50)


@pytest.mark.slow
def test_real_llm_methods_in_a_study(tmp_path, tiny_llama):
    """lora, mixed-task lora (adapter_path), merge and icl wired through the runner.

    Uses the tiny random Llama, the synthetic data and 2 optimizer steps: this checks
    the plumbing (dependency folders, adapters found, records written), not quality.
    """
    from ecomlm.study.config import parse_study
    from ecomlm.study.runner import run_study

    lora = {"base_model": tiny_llama, "max_steps": 2, "batch_size": 2, "max_length": 128,
            "max_new_tokens": 8, "r": 4, "alpha": 8}  # fmt: skip
    data = {
        "name": "llm",
        "train_sizes": [8],
        "bootstrap": 50,
        "bootstrap_budget_s": 0,
        "tasks": [{"name": "esci", "max_eval": 4}, {"name": "queryner", "max_eval": 3}],
        "methods": [
            {"name": "lora", "config": lora},
            {"name": "icl", "k": [1], "tasks": ["esci"],
             "config": {"backend": "local", "model": tiny_llama, "max_new_tokens": 4}},
        ],
        "mixed": [{"config": lora}],
        "merges": [{"label": "merge", "adapters": ["lora"], "across_tasks": True,
                    "config": {"combination": "linear", "max_new_tokens": 8}}],
    }  # fmt: skip
    study_dir = tmp_path / "llm"
    summary = run_study(parse_study(data), study_dir, log=lambda s: None)
    rows = _rows(study_dir)
    failed = {k: r["error"] for k, r in rows.items() if r["status"] != "done"}
    assert not failed, failed
    assert summary["done"] == 7  # 2 lora + 1 icl + mixed (train + eval) + 2 merges
    mixed_eval = next(r for r in rows.values() if r["family"] == "lora-mixed" and r["deps"])
    config = yaml.safe_load((study_dir / mixed_eval["id"] / "config.yaml").read_text())
    assert config["method_config"]["adapter_path"] == str(
        (study_dir / mixed_eval["deps"][0]).resolve()
    )
    md = Path(summary["report"]).read_text()
    assert "## Single-task vs mixed-task vs merged LoRA" in md
    similarity = md.split("## Adapter similarity")[1].split("##")[0]
    assert "Skipped" not in similarity
    # the adapters merged (one per task) and the mixed-task adapter are the ones compared
    assert all(f"{name} (n=8, seed 0)" in similarity
               for name in ("lora on esci", "lora on queryner", "lora-mixed on esci"))  # fmt: skip
    with open(study_dir / "report" / "adapters" / "matrix_cos_delta.csv") as f:
        assert f.readline().strip().split(",")[1:] == [
            "lora-esci", "lora-queryner", "lora-mixed-esci"]  # fmt: skip
    assert "| lora-esci | lora-mixed-esci |" in similarity  # each pair's numbers, as a table
