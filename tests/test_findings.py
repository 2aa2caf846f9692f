"""Guarded conclusions on hand-made run records: no claim rests on a budget-stopped,
diverged or suspect run, or on a CI that includes 0."""

from __future__ import annotations

from pathlib import Path

from ecomlm.study import verdicts
from ecomlm.study.report import Run, _findings

CMP_CLEAR = {"delta": 0.12, "lo": 0.05, "hi": 0.19, "p": 0.001, "n_boot": 1000}
CMP_NOISY = {"delta": 0.02, "lo": -0.03, "hi": 0.07, "p": 0.4, "n_boot": 1000}


def run(label: str, score: float, stop: str = "converged", invalid: float = 0.0,
        family: str = "lora", majority: float | None = 0.5) -> Run:  # fmt: skip
    return Run(
        id=f"esci-{label}", dir=Path("/nonexistent"), label=label, family=family, task="esci",
        train_size=100, seed=0, status="done", main_metric="accuracy",
        metrics={"accuracy": score, "invalid_rate": invalid},
        training={"stop_reason": stop},
        baseline=None if majority is None else {"accuracy": majority},
    )  # fmt: skip


def test_claim_needs_both_converged_and_a_ci_excluding_zero():
    a, b = run("lora", 0.8), run("bert", 0.68, family="bert")
    allowed, text = verdicts.verdict(a, b, CMP_CLEAR)
    assert allowed and text.startswith("lora beats bert") and "invalid 0% vs 0%" in text
    allowed, text = verdicts.verdict(a, b, CMP_NOISY)
    assert not allowed and "inconclusive" in text and "includes 0" in text
    allowed, text = verdicts.verdict(a, b, None)
    assert not allowed and "not evaluated on the same examples" in text


def test_budget_run_blocks_the_claim_with_its_fix():
    a, b = run("lora", 0.8, stop="budget"), run("bert", 0.68, family="bert")
    allowed, text = verdicts.verdict(a, b, CMP_CLEAR)
    assert not allowed
    assert "lora stopped on budget before converging: raise" in text
    # with a dev curve the fix says whether it was still improving or merely undecided
    curve = [{"step": s, "score": v} for s, v in ((10, 0.5), (20, 0.6), (30, 0.55))]
    a.training = {"stop_reason": "budget", "dev_curve": curve, "best_step": 30}
    assert "lora stopped on budget while still improving" in verdicts.verdict(a, b, CMP_CLEAR)[1]
    a.training["best_step"] = 20
    text = verdicts.verdict(a, b, CMP_CLEAR)[1]
    assert "lora stopped on budget 1 dev evaluation after its best, before patience" in text
    for stop, fix in (("diverged", "lower the learning rate"), ("unknown", "training.json")):
        allowed, text = verdicts.verdict(run("lora", 0.8, stop=stop), b, CMP_CLEAR)
        assert not allowed and fix in text


def test_the_fix_says_when_a_raised_budget_continues_the_run(tmp_path):
    a, b = run("lora", 0.8, stop="budget"), run("bert", 0.68, family="bert")
    a.dir = tmp_path
    assert "continues it" not in verdicts.verdict(a, b, CMP_CLEAR)[1]
    (tmp_path / "checkpoint").mkdir()  # an empty folder is no checkpoint
    assert "continues it" not in verdicts.verdict(a, b, CMP_CLEAR)[1]
    (tmp_path / "checkpoint" / "loop_state.pt").write_bytes(b"state")  # a fit kept its state
    text = verdicts.verdict(a, b, CMP_CLEAR)[1]
    assert "raise epochs / max_steps / max_seconds (its checkpoint is kept: a raised " in text


def test_a_win_on_more_training_data_is_no_method_claim():
    big, small = run("bert", 0.8, family="bert"), run("lora", 0.68)
    big.train_size, small.train_size = None, 256  # n = all vs n = 256
    allowed, text = verdicts.verdict(big, small, CMP_CLEAR)
    assert not allowed and "bert trained on more data (n=all vs n=256)" in text
    # winning with less data is a claim: the data cannot explain it
    big.metrics["accuracy"], small.metrics["accuracy"] = 0.6, 0.75
    allowed, text = verdicts.verdict(small, big, CMP_CLEAR)
    assert allowed and text.startswith("lora beats bert")


def test_untrained_arms_can_carry_claims():
    icl = run("icl-k4", 0.7, stop="not_trained", family="icl")
    allowed, _ = verdicts.verdict(icl, run("bert", 0.6, family="bert"), CMP_CLEAR)
    assert allowed


def test_suspect_runs_are_flagged():
    assert verdicts.suspect_reasons(run("lora", 0.45)) == ["below the majority baseline (0.500)"]
    # exactly the prior: it learned the label frequencies, nothing else
    assert verdicts.suspect_reasons(run("bert", 0.5)) == [
        "no better than the majority baseline (0.500)"
    ]
    assert verdicts.suspect_reasons(run("icl", 0.6, invalid=0.2)) == ["20% invalid answers"]
    assert verdicts.suspect_reasons(run("icl", 0.6, invalid=0.1)) == []  # 10% is the limit
    allowed, text = verdicts.verdict(run("lora", 0.8), run("icl", 0.45), CMP_CLEAR)
    assert not allowed and "icl is suspect: below the majority baseline" in text


def test_findings_section_refuses_budget_vs_converged(monkeypatch):
    from ecomlm.study import report

    a, b = run("lora", 0.8, stop="budget"), run("bert", 0.68, family="bert")
    monkeypatch.setattr(report, "compare", lambda x, y: CMP_CLEAR)
    comps = [{"task": "esci", "kind": "LoRA vs PLM", "a": a, "b": b, "cmp": CMP_CLEAR}]
    (_, _), (_, _), (_, items) = _findings([a, b], ["esci"], comps, 1000)
    text = " ".join(items)
    assert "beats" not in text and "inconclusive" in text and "raise" in text
    assert "Pipeline check" not in text  # bert converged
    # every trained run on budget: the study is labelled a pipeline check
    b = run("bert", 0.68, family="bert", stop="budget")
    comps[0]["b"] = b
    (_, _), (_, _), (_, items) = _findings([a, b], ["esci"], comps, 1000)
    assert "Pipeline check, no finding drawn" in items[0]


def test_key_comparisons_table_says_which_significant_differences_are_findings():
    from ecomlm.study.report.comparisons import _comparison_section

    lora, bert = run("lora", 0.8, stop="budget"), run("bert", 0.68, family="bert")
    icl = run("icl-k4", 0.6, stop="not_trained", family="icl")
    comps = [
        {"task": "esci", "kind": "LoRA vs PLM", "a": lora, "b": bert, "cmp": CMP_CLEAR},
        {"task": "esci", "kind": "PLM vs ICL", "a": bert, "b": icl, "cmp": CMP_CLEAR},
        {"task": "esci", "kind": "LoRA vs ICL", "a": lora, "b": icl, "cmp": CMP_NOISY},
        {"task": "esci", "kind": "ICL vs floor", "a": icl, "b": bert, "cmp": None},
    ]
    table = _comparison_section(comps, 1000)[-1][1]
    significant = [row[table.headers.index("significant")] for row in table.rows]
    claims = [row[table.headers.index("claim")] for row in table.rows]
    assert significant == ["yes", "yes", "no", "–"]
    # significant but on a budget-stopped run: no finding, and the table says why
    assert claims == [
        "no: lora budget",
        "yes",
        "no: lora budget, CI includes 0",
        "no: not paired",
    ]


def test_majority_baseline_scores_the_constant_answer():
    from ecomlm.tasks.esci import EsciTask

    rows = [
        {"input": {"query": "q", "product_title": "t", "label": lab}, "gold": lab}
        for lab in ("Exact", "Exact", "Exact", "Irrelevant")
    ]
    base = verdicts.majority_baseline(EsciTask(), rows)
    assert base["accuracy"] == 0.75 and base["invalid_rate"] == 0.0


def test_a_degenerate_generator_is_flagged_against_the_best_constant_answer():
    from ecomlm.tasks.desc_gen import DescGenTask

    task = DescGenTask()
    golds = ["a red cotton shirt for summer", "blue steel water bottle keeps drinks cold",
             "a red cotton dress for summer", "wooden desk lamp with warm light"]  # fmt: skip
    rows = [{"input": {"title": g, "brand": "b", "color": "", "bullets": [], "category": "",
                       "description": g, "id": str(i)}, "gold": g}
            for i, g in enumerate(golds)]  # fmt: skip
    constant = verdicts.constant_baseline(task, rows, "rougeL")
    # "a red cotton shirt for summer" also matches the dress: the best single answer
    assert 0 < constant["rougeL"] < 1

    def generator(score: float) -> Run:
        return Run(id="desc_gen-seq2seq", dir=Path("/nonexistent"), label="seq2seq",
                   family="seq2seq", task="desc_gen", train_size=100, seed=0, status="done",
                   main_metric="rougeL", metrics={"rougeL": score, "invalid_rate": 0.0},
                   training={"stop_reason": "converged"},
                   baseline=constant, baseline_name="the best constant answer")  # fmt: skip

    assert verdicts.suspect_reasons(generator(0.02)) == [
        f"below the best constant answer ({constant['rougeL']:.3f})"
    ]
    assert verdicts.suspect_reasons(generator(0.9)) == []
    assert verdicts.constant_baseline(task, [], "rougeL") is None


def test_a_runs_base_model_is_its_option_else_its_methods_default():
    """Adapters are grouped (similarity: SmolLM2 and Gemma-3 adapters differ in shape) and
    paired (a mixed adapter vs its own base model's single-task one) by base model; a run
    naming the default and one leaving it out are of one base model."""
    from ecomlm.study.report.loading import _base_model

    def spec(method, **config):
        return {"method": method, "method_config": config}

    assert _base_model(spec("lora")) == _base_model(spec("lora", base_model="smollm2"))
    assert _base_model(spec("lora")) == "smollm2"
    assert _base_model(spec("lora", base_model="gemma3")) == "gemma3"
    # no such option, a merge's default (its adapters'), a method this install lacks
    assert [_base_model(spec(m)) for m in ("icl", "merge", "no-such-method")] == ["", "", ""]


def test_learning_curve_tables_show_each_size_and_the_seed_spread():
    from dataclasses import replace

    from ecomlm.study.report.sections import learning_curve_tables

    base = run("bert", 0.5, family="bert", majority=0.2)
    runs = [replace(base, id=f"r{size}{seed}", train_size=size, seed=seed,
                    metrics={"accuracy": score, "invalid_rate": 0.0})
            for size, seed, score in [(100, 0, 0.5), (100, 1, 0.6), (100, 2, 0.7),
                                      (None, 0, 0.8)]]  # fmt: skip
    runs.append(replace(base, id="lora100", label="lora", family="lora"))
    runs.append(replace(base, id="budget", label="lora", family="lora", train_size=None,
                        training={"stop_reason": "budget"}))  # fmt: skip
    runs.append(replace(base, id="merge", label="merge", family="merge"))
    blocks = learning_curve_tables(runs, ["esci"], ["bert", "lora", "merge"])
    table = next(body for kind, body in blocks if kind == "table")
    assert table.headers == ["method", "n = 100", "n = all"]
    assert table.rows == [  # a single run (the merge) is left to the main table
        ["bert", "0.500; 3 seeds 0.600 ± 0.100", "0.800"],
        ["lora", "0.500", "0.500 (budget)"],
    ]


def test_each_trained_group_is_compared_with_the_classical_floor(monkeypatch):
    from dataclasses import replace

    from ecomlm.study.report import comparisons

    monkeypatch.setattr(comparisons, "compare", lambda a, b: CMP_CLEAR)
    runs = [replace(run(name, score, family=name), method=name)
            for name, score in [("classical", 0.5), ("bert", 0.7), ("lora", 0.6)]]  # fmt: skip
    comps = comparisons.key_comparisons(runs, ["esci"])
    pairs = [(c["kind"], c["a"].label, c["b"].label) for c in comps]
    assert pairs == [
        ("LoRA vs PLM", "lora", "bert"),
        ("LoRA vs floor", "lora", "classical"),
        ("PLM vs floor", "bert", "classical"),
    ]  # the winner (bert) vs the runner-up (lora) is already the first pair


def test_best_runs_of_different_sizes_are_also_compared_at_a_common_size(monkeypatch):
    from dataclasses import replace

    from ecomlm.study.report import comparisons

    def paired(a, b):  # a clear difference of the runs' own scores
        delta = a.main - b.main
        return {"delta": delta, "lo": delta - 0.05, "hi": delta + 0.05, "p": 0.001, "n_boot": 1000}

    monkeypatch.setattr(comparisons, "compare", paired)
    bert_all = replace(run("bert", 0.8, family="bert"), id="bert-all", train_size=None)
    bert_500 = replace(run("bert", 0.75, family="bert"), id="bert-500", train_size=500)
    lora_500 = replace(run("lora", 0.6), id="lora-500", train_size=500)
    lora_100 = replace(run("lora", 0.5), id="lora-100", train_size=100)
    comps = [{"task": "esci", "kind": "LoRA vs PLM", "a": lora_500, "b": bert_all,
              "cmp": paired(lora_500, bert_all)}]  # fmt: skip
    (_, _), (_, _), (_, items) = _findings([bert_all, bert_500, lora_500, lora_100], ["esci"],
                                           comps, 1000)  # fmt: skip
    text = items[0]
    assert "lora vs bert — bert trained on more data (n=all vs n=500)" in text
    # the largest size both finished (500, not 100), where data cannot explain the gap
    assert "At n=500: bert beats lora (lora − bert = -0.150" in text
    # the claim first, then what is undecided
    assert text.index("**1 finding(s):** At n=500: bert beats") < text.index("**1 inconclusive:**")
    # same sizes: nothing added
    comps[0]["b"] = bert_500
    (_, _), (_, _), (_, items) = _findings([bert_500, lora_500], ["esci"], comps, 1000)
    assert "At n=" not in items[0]


def test_main_table_says_which_planned_runs_have_not_finished():
    from ecomlm.study.report.sections import _main_table

    done, todo = run("lora", 0.8), run("lora-gemma", 0.0)
    todo.status, todo.metrics = "todo", {}
    blocks = _main_table([done, todo], ["esci", "queryner"], ["lora", "lora-gemma"])
    table = next(block[1] for block in blocks if block[0] == "table")
    rows = {row[0]: row[1:] for row in table.rows}
    assert rows["lora"][0].startswith("0.800") and rows["lora"][1] == ""  # not planned there
    assert rows["lora-gemma"] == ["not finished", ""]


def test_a_merge_is_compared_with_its_own_tasks_adapter_among_those_it_merged(monkeypatch):
    from dataclasses import replace

    from ecomlm.study.report import comparisons

    monkeypatch.setattr(comparisons, "compare", lambda a, b: CMP_CLEAR)
    single_500 = replace(run("lora", 0.7), id="esci-lora-n500", train_size=500, method="lora")
    single_256 = replace(run("lora", 0.9), id="esci-lora-n256", train_size=256, method="lora")
    merged = replace(run("merge-ties", 0.6, stop="not_trained", family="merge"), method="merge",
                     train_size=256, deps=["esci-lora-n500", "other-task-lora"])  # fmt: skip
    runs = [single_500, single_256, merged]
    ((allowed, text),) = comparisons._variant_findings(
        runs, {("esci", "merge-ties"): merged}, "esci"
    )
    # its own adapter (n=500), not the one of the merge's nominal size; the merge holds that
    # adapter's data, so the train sizes are no reason to withhold the claim
    assert "merge-ties is worse than single-task lora at n=500 (-0.100" in text
    assert allowed and "inconclusive" not in text
    mixed = replace(merged, label="lora-mixed", family="lora-mixed", method="lora", deps=[])
    ((_, text),) = comparisons._variant_findings(runs, {("esci", "lora-mixed"): mixed}, "esci")
    assert "lora-mixed is worse than single-task lora at n=256 (-0.300" in text
    # a better adapter of another base model (the second LLM family) is not its reference
    better = {"accuracy": 0.95, "invalid_rate": 0.0}
    gemma = replace(single_256, id="esci-lora-gemma-n256", label="lora-gemma",
                    base_model="gemma3", metrics=better)  # fmt: skip
    ((_, text),) = comparisons._variant_findings(
        runs + [gemma], {("esci", "lora-mixed"): mixed}, "esci"
    )
    assert "than single-task lora at n=256 (-0.300" in text and "lora-gemma" not in text


def test_demonstrations_are_tested_against_the_same_models_zero_shot(monkeypatch):
    from dataclasses import replace

    from ecomlm.study.report import comparisons

    monkeypatch.setattr(comparisons, "compare", lambda a, b: CMP_CLEAR)
    icl = [replace(run(f"{entry}-k{k}", score, stop="not_trained", family="icl"),
                   id=f"{entry}-{k}", method="icl", k=k)
           for entry, k, score in [("icl", 0, 0.3), ("icl", 4, 0.6), ("icl", 8, 0.5),
                                   ("icl-gemma", 0, 0.4)]]  # fmt: skip
    comps = comparisons.key_comparisons(icl, ["esci"])
    shots = [(c["a"].label, c["b"].label) for c in comps if c["kind"] == "ICL k-shot vs zero-shot"]
    assert shots == [("icl-k4", "icl-k0")]  # the best k > 0 of that entry; gemma has no k > 0
