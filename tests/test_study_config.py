"""Study YAML validation and grid expansion (no runs executed)."""

from __future__ import annotations

import copy

import pytest
import yaml

from ecomlm.study.config import StudyConfigError, load_study, parse_study
from ecomlm.study.grid import expand, waves

BASE = {
    "name": "demo",
    "train_sizes": [64, 256],
    "seeds": [0, 1],
    "max_eval": 50,
    "tasks": [{"name": "esci"}, {"name": "queryner", "max_eval": 20}],
    "methods": [
        {"name": "classical"},
        {"name": "lora", "config": {"max_steps": 5}},
        {"name": "icl", "k": [0, 2, 4]},
    ],
    "mixed": [{"config": {"max_steps": 5}}],
    "merges": [
        {"label": "merge-ties", "adapters": ["lora"], "across_tasks": True,
         "config": {"combination": "ties", "density": 0.5}},
    ],
}  # fmt: skip


def _err(data: dict) -> str:
    with pytest.raises(StudyConfigError) as info:
        parse_study(data, where="study.yaml")
    return str(info.value)


def test_valid_config_loads_from_yaml(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(BASE))
    cfg = load_study(path)
    assert cfg.name == "demo" and [t.name for t in cfg.tasks] == ["esci", "queryner"]
    assert cfg.methods[2].k == [0, 2, 4]


def test_unknown_method_names_location():
    data = copy.deepcopy(BASE)
    data["methods"].append({"name": "bertt"})
    msg = _err(data)
    assert "study.yaml: methods[3].name: unknown method 'bertt'" in msg


def test_unknown_key_names_location():
    data = copy.deepcopy(BASE)
    data["tasks"][1]["max_evl"] = 3
    data["methods"][0]["confg"] = {}
    msg = _err(data)
    assert "study.yaml: tasks[1]: unknown key 'max_evl'" in msg
    assert "study.yaml: methods[0]: unknown key 'confg'" in msg


def test_top_level_unknown_key_and_bad_values():
    assert "<top>: unknown key 'method'" in _err({**BASE, "method": []})
    assert "train_sizes" in _err({**BASE, "train_sizes": [0]})
    assert "tasks[0].name: unknown task 'escii'" in _err({**BASE, "tasks": [{"name": "escii"}]})


def test_bad_merge_reference():
    data = copy.deepcopy(BASE)
    data["merges"][0]["adapters"] = ["lora", "lora-typo"]
    msg = _err(data)
    assert "merges[0].adapters[1]: 'lora-typo' is not the label of a lora entry" in msg


def test_duplicate_label_and_unknown_task_reference():
    data = copy.deepcopy(BASE)
    data["methods"].append({"name": "classical"})
    assert "methods[3].label: label 'classical' already used by methods[0]" in _err(data)
    # one label on disjoint tasks (another budget for one task): each (label, task) is one
    # config, and the other task's runs keep their ids
    data = copy.deepcopy(BASE)
    before = {r.id for r in expand(parse_study(copy.deepcopy(data))) if r.label == "classical"}
    data["methods"][0]["tasks"] = ["esci"]
    data["methods"].append({"name": "classical", "tasks": ["queryner"],
                            "size_config": {"256": {"crf_iterations": 10}}})  # fmt: skip
    runs = [r for r in expand(parse_study(data)) if r.label == "classical"]
    changed = {r.id for r in runs} - before
    assert len(runs) == len(before) and {(r.task, r.train_size) for r in runs
                                         if r.id in changed} == {("queryner", 256)}  # fmt: skip
    data["methods"][-1]["tasks"] = ["queryner", "esci"]
    assert "label 'classical' already used by methods[0] on the same tasks" in _err(data)
    data = copy.deepcopy(BASE)
    data["methods"][0]["tasks"] = ["esci", "desc_gen"]
    assert "methods[0].tasks[1]: task 'desc_gen' is not in the study's tasks" in _err(data)
    data = copy.deepcopy(BASE)
    data["methods"][0]["k"] = [1]
    assert "methods[0].k: only icl entries take a k list" in _err(data)


def test_merge_needs_two_adapters():
    data = copy.deepcopy(BASE)
    data["merges"][0]["across_tasks"] = False  # one lora label within a task = one adapter
    cfg = parse_study(data)
    with pytest.raises(StudyConfigError, match="at least 2 adapters"):
        expand(cfg)


def test_grid_counts_order_and_dependencies():
    cfg = parse_study(BASE)
    runs = expand(cfg)
    by = {}
    for r in runs:
        by.setdefault(r.family, []).append(r)
    # 2 tasks x 2 sizes x 2 seeds
    assert len(by["classical"]) == 8 and len(by["lora"]) == 8
    # icl: 2 tasks x 1 size (the largest) x 2 seeds x 3 k
    assert len(by["icl"]) == 12 and {r.train_size for r in by["icl"]} == {256}
    # mixed: per size x seed one training run (first task) + one eval run (second task)
    assert len(by["lora-mixed"]) == 8
    assert sum(r.role == "eval" for r in by["lora-mixed"]) == 4
    assert len(by["merge"]) == 8
    assert len(runs) == 44
    position = {r.id: i for i, r in enumerate(runs)}
    for r in runs:
        assert all(position[d] < position[r.id] for d in r.deps), r.id
    merge = next(r for r in by["merge"] if r.task == "queryner" and r.train_size == 64)
    deps = [next(x for x in runs if x.id == d) for d in merge.deps]
    assert [(d.family, d.task, d.train_size, d.seed) for d in deps] == [
        ("lora", "esci", 64, merge.seed),
        ("lora", "queryner", 64, merge.seed),
    ]
    assert merge.inject == {"adapters": merge.deps}
    mixed_eval = next(r for r in by["lora-mixed"] if r.role == "eval")
    train = next(x for x in runs if x.id == mixed_eval.deps[0])
    assert train.spec.method_config["mix_tasks"] == {"queryner": "synthetic"}
    assert mixed_eval.inject == {"adapter_path": train.id}
    assert [len(w) for w in waves(runs)] == [32, 12]
    # run settings resolved from task entries
    q = next(r for r in by["classical"] if r.task == "queryner")
    assert q.spec.max_eval == 20 and q.spec.source == "synthetic"


def test_ids_are_stable_readable_and_config_sensitive():
    ids = [r.id for r in expand(parse_study(BASE))]
    assert ids == [r.id for r in expand(parse_study(copy.deepcopy(BASE)))]
    assert len(set(ids)) == len(ids)
    assert ids[0].startswith("esci-classical-n64-s0-") and len(ids[0].rsplit("-", 1)[1]) == 8
    assert any(i.startswith("esci-icl-k2-n256-s1-") for i in ids)
    changed = copy.deepcopy(BASE)
    changed["methods"][1]["config"]["max_steps"] = 6
    new = {r.id for r in expand(parse_study(changed))}
    lora_old = {i for i in ids if "-lora-n" in i}
    assert not (lora_old & new)  # changed LoRA config -> new LoRA runs ...
    assert {i for i in ids if "-classical-" in i} <= new  # ... others unchanged
    # merges depend on the LoRA runs, so their ids change too (hash covers dependency ids)
    assert not ({i for i in ids if "-merge-" in i} & new)


def test_pinned_reference_and_per_entry_overrides():
    data = copy.deepcopy(BASE)
    data["seeds"] = [0]
    data["methods"][1]["seeds"] = [0, 1]
    data["methods"][1]["task_config"] = {"queryner": {"max_steps": 9}}
    data["merges"] = [
        {"label": "soup", "tasks": ["esci"], "train_sizes": [256],
         "adapters": ["lora", {"label": "lora", "seed": 1}]},
    ]  # fmt: skip
    runs = expand(parse_study(data))
    soup = [r for r in runs if r.family == "merge"]
    assert len(soup) == 1
    deps = [next(x for x in runs if x.id == d) for d in soup[0].deps]
    assert [(d.task, d.train_size, d.seed) for d in deps] == [("esci", 256, 0), ("esci", 256, 1)]
    q = [r for r in runs if r.family == "lora" and r.task == "queryner"]
    assert all(r.spec.method_config["max_steps"] == 9 for r in q)
    # the same merge label on another task at another size (tasks' sizes differ)
    data["merges"].append({**data["merges"][0], "tasks": ["queryner"], "train_sizes": [64]})
    soups = [(r.task, r.train_size) for r in expand(parse_study(data)) if r.label == "soup"]
    assert soups == [("esci", 256), ("queryner", 64)]
    data["merges"][1]["tasks"] = ["queryner", "esci"]
    assert "merges[1].label: label 'soup' already used by merges[0]" in _err(data)
    data["merges"][1]["tasks"] = ["queryner"]
    data["merges"][1]["label"] = "lora"  # a method's label stays its own on every task
    assert "merges[1].label: label 'lora' already used by methods[1]" in _err(data)
    data["merges"].pop()
    data["merges"][0]["adapters"][1]["seed"] = 7
    with pytest.raises(StudyConfigError, match=r"merges\[0\].adapters\[1\]: no run of 'lora'"):
        expand(parse_study(data))


def test_shipped_configs_validate():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    for name in ("quickstart.yaml", "example_study.yaml"):
        cfg = load_study(root / name)
        assert expand(cfg)


def test_extra_seeds_only_at_sizes_up_to_the_limit():
    data = copy.deepcopy(BASE)
    data["train_sizes"] = [64, 256, None]
    data["methods"][0].update(seeds=[0, 1, 2], seeds_up_to=64)
    unlimited = copy.deepcopy(BASE) | {"train_sizes": [64, 256, None]}
    plain = {r.id for r in expand(parse_study(unlimited))}
    runs = [r for r in expand(parse_study(data)) if r.family == "classical"]
    by_size = {size: sorted(r.seed for r in runs if r.train_size == size and r.task == "esci")
               for size in (64, 256, None)}  # fmt: skip
    assert by_size == {64: [0, 1, 2], 256: [0], None: [0]}
    # the first seed's runs keep their ids: a finished study resumes with the limit added
    assert {r.id for r in runs if r.seed == 0} <= plain
    data["methods"][0]["seeds_up_to"] = 0
    assert "seeds_up_to" in _err(data)


def test_estimates_scale_by_what_finished_runs_took():
    from ecomlm.study.grid import calibrated_estimates, estimate_seconds

    runs = expand(parse_study(copy.deepcopy(BASE)))
    esci = [r for r in runs if r.family == "classical" and r.task == "esci"]
    done = next(r for r in esci if r.train_size == 64 and r.seed == 0)
    twin = next(r for r in esci if r.train_size == 64 and r.seed == 1)
    larger = next(r for r in esci if r.train_size == 256)
    other = next(r for r in runs if r.family == "lora")
    est = calibrated_estimates(runs, {done.id: 3 * estimate_seconds(done)})
    assert est[twin.id] == pytest.approx((3 * estimate_seconds(twin), True))
    assert est[larger.id] == pytest.approx((3 * estimate_seconds(larger), True))
    assert est[other.id] == (estimate_seconds(other), False)
    # a label with nothing finished (the mixed adapter) scales by its method's runs
    lora = next(r for r in runs if r.family == "lora" and r.task == "esci")
    mixed = next(r for r in runs if r.family == "lora-mixed" and r.task == "esci")
    est = calibrated_estimates(runs, {lora.id: 2 * estimate_seconds(lora)})
    assert est[mixed.id] == pytest.approx((2 * estimate_seconds(mixed), True))
    assert est[done.id][1] is False  # other methods are not scaled by it


def test_estimates_use_the_measured_split_size_and_stop_at_the_budget():
    from ecomlm.study.grid import calibrated_estimates, estimate_seconds
    from ecomlm.study.plan import full_train_sizes

    data = copy.deepcopy(BASE) | {"train_sizes": [64, None]}
    data["methods"][1]["config"] = {"epochs": 3, "max_seconds": 600}
    runs = expand(parse_study(data))
    floor = next(r for r in runs if r.family == "classical" and r.train_size is None)
    lora = next(r for r in runs if r.family == "lora" and r.train_size is None)
    rows = [{"task": "esci", "train_size": None, "status": "done",
             "cost": {"train_examples": 4000}},
            {"task": "esci", "train_size": None, "status": "done",  # mixed: not a split size
             "cost": {"train_examples": 9, "train_examples_per_task": {"esci": 4, "x": 5}}},
            {"task": "queryner", "train_size": 64, "status": "done",
             "cost": {"train_examples": 64}}]  # fmt: skip
    assert full_train_sizes(rows) == {"esci": 4000}
    assert estimate_seconds(floor, 4000) > estimate_seconds(floor)  # assumed 1,000 otherwise
    est = calibrated_estimates([floor, lora], {}, {"esci": 4000})
    assert est[floor.id][0] == pytest.approx(estimate_seconds(floor, 4000))
    # 3 epochs of 4,000 examples would take hours; the run stops at its 600 s budget
    assert estimate_seconds(lora, 4000) > 3600 > est[lora.id][0] > 600


def test_size_config_overrides_only_that_size():
    data = copy.deepcopy(BASE)
    data["train_sizes"] = [64, None]
    before = {r.id for r in expand(parse_study(copy.deepcopy(data)))}
    data["methods"][1]["size_config"] = {"all": {"max_steps": 50}, "64": {"lr": 1e-3}}
    runs = [r for r in expand(parse_study(data)) if r.family == "lora"]
    assert {r.train_size: r.spec.method_config.get("max_steps") for r in runs} == {64: 5, None: 50}
    assert {r.train_size: r.spec.method_config.get("lr") for r in runs} == {64: 1e-3, None: None}
    data["methods"][1]["size_config"] = {"all": {"max_steps": 50}}
    small = {r.id for r in expand(parse_study(data)) if r.family == "lora" and r.train_size == 64}
    assert small <= before  # the other sizes keep their ids: finished runs stay finished
    data["methods"][1]["size_config"] = {"most": {}}
    assert "methods[1].size_config.most" in _err(data)


def test_plan_marks_runs_that_can_only_stop_on_budget(tmp_path):
    from ecomlm.study.plan import plan_text
    from ecomlm.study.store import ResultStore

    data = copy.deepcopy(BASE) | {"train_sizes": [64], "mixed": [], "merges": []}
    # 64 examples, batch 8: 8 steps an epoch; 5 steps cannot hold 1 + 3 evaluations
    text = plan_text(expand(parse_study(data)), ResultStore(tmp_path))
    marked = [line for line in text.splitlines() if "! can only stop on budget" in line]
    assert len(marked) == 4  # the LoRA runs: 2 tasks x 2 seeds; not classical or ICL
    assert "4 runs to do can only stop on budget" in text
    data["methods"][1]["config"] = {"epochs": 3, "batch_size": 8, "eval_every": 2}
    assert "can only stop" not in plan_text(expand(parse_study(data)), ResultStore(tmp_path))
