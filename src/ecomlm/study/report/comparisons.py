"""Paired comparisons and the guarded findings built on them (see ``verdicts``)."""

from __future__ import annotations

import math
from typing import Any

from ecomlm.study import verdicts
from ecomlm.study.report.blocks import Block, Table, _fmt, _fmt_ci, _fmt_p, _p_text
from ecomlm.study.report.loading import (
    ALPHA,
    PLM_FAMILIES,
    Run,
    _best,
    _label_order,
    headline_runs,
)
from ecomlm.study.verdicts import size_key, size_str


def compare(a: Run, b: Run) -> dict[str, float] | None:
    """Paired bootstrap comparison of two runs from their cached samples (None if unpaired)."""
    import numpy as np

    from ecomlm.study.stats import compare_samples

    sa, sb = a.stats or {}, b.stats or {}
    same = (
        sa.get("examples_digest")
        and sa.get("examples_digest") == sb.get("examples_digest")
        and (sa.get("n_boot"), sa.get("seed")) == (sb.get("n_boot"), sb.get("seed"))
        and sa.get("main_samples")
        and sb.get("main_samples")
    )
    if not same:
        return None
    return compare_samples(
        a.main, b.main, np.asarray(sa["main_samples"]), np.asarray(sb["main_samples"])
    )


def key_comparisons(runs: list[Run], tasks: list[str]) -> list[dict[str, Any]]:
    """Per task: best LoRA vs best PLM vs best ICL, each vs the classical floor, each ICL
    entry's best k-shot run vs its zero-shot run, and the winner vs the runner-up (unless
    that pair is already compared)."""
    head = headline_runs(runs)
    out = []
    for task in tasks:
        rs = [r for (t, _), r in head.items() if t == task]
        groups = {
            "LoRA": _best([r for r in rs if r.trained_adapter]),
            "PLM": _best([r for r in rs if r.info.family in PLM_FAMILIES]),
            "ICL": _best([r for r in rs if r.info.family == "icl"]),
            "floor": _best([r for r in rs if r.info.family == "classical"]),
        }
        pairs = [("LoRA", "PLM"), ("LoRA", "ICL"), ("PLM", "ICL")]
        pairs += [(g, "floor") for g in ("LoRA", "PLM", "ICL")]
        compared = set()
        for ga, gb in pairs:
            a, b = groups[ga], groups[gb]
            if a and b:
                compared.add(frozenset((a.id, b.id)))
                out.append(
                    {"task": task, "kind": f"{ga} vs {gb}", "a": a, "b": b, "cmp": compare(a, b)}
                )
        for a, b in _shots_vs_zero_shot(rs):
            compared.add(frozenset((a.id, b.id)))
            out.append({"task": task, "kind": "ICL k-shot vs zero-shot", "a": a, "b": b,
                        "cmp": compare(a, b)})  # fmt: skip
        ranked = sorted((r for r in rs if not math.isnan(r.main)), key=lambda r: -r.main)
        if len(ranked) >= 2 and frozenset((ranked[0].id, ranked[1].id)) not in compared:
            a, b = ranked[0], ranked[1]
            out.append(
                {"task": task, "kind": "winner vs runner-up", "a": a, "b": b, "cmp": compare(a, b)}
            )
    return out


def _shots_vs_zero_shot(runs: list[Run]) -> list[tuple[Run, Run]]:
    """Per ICL entry (one model and prompt: ``icl-k0``, ``icl-k4`` share ``icl``): its best
    run with demonstrations vs its zero-shot run, so demonstrations are tested on their own."""
    by_entry: dict[str, list[Run]] = {}
    for r in runs:
        if r.info.k_shot and r.k is not None:
            by_entry.setdefault(r.icl_entry, []).append(r)
    pairs = []
    for shots in by_entry.values():
        zero = next((r for r in shots if r.k == 0), None)
        few = _best([r for r in shots if r.k])
        if zero and few:
            pairs.append((few, zero))
    return pairs


def _comparison_section(comps: list[dict[str, Any]], n_boot: int) -> list[Block]:
    if not comps:
        return []
    header = ["task", "comparison", "A", "B", "A − B", "95% CI", "p", "significant", "claim"]
    table = Table(header, [])
    for c in comps:
        cmp = c["cmp"]
        a, b = c["a"], c["b"]
        tags = verdicts.claim_tags(a, b, cmp)
        claim = "no: " + ", ".join(tags) if tags else "yes"
        if cmp is None:
            table.rows.append(
                [
                    c["task"],
                    c["kind"],
                    a.label,
                    b.label,
                    _fmt(a.main - b.main),
                    "not paired",
                    "–",
                    "–",
                    claim,
                ]
            )
            continue
        sig = "yes" if cmp["p"] < ALPHA else "no"
        table.rows.append(
            [
                c["task"],
                c["kind"],
                f"{a.label} ({_fmt(a.main)})",
                f"{b.label} ({_fmt(b.main)})",
                f"{cmp['delta']:+.3f}",
                f"[{cmp['lo']:+.3f}, {cmp['hi']:+.3f}]",
                _fmt_p(cmp["p"], cmp["n_boot"]),
                sig,
                claim,
            ]
        )
    return [
        ("h2", "Key comparisons (paired bootstrap)"),
        (
            "p",
            f"Difference in the main metric between the best run of each group (LoRA = single- "
            f"or mixed-task LoRA; PLM = fine-tuned BERT-style / seq2seq; ICL = in-context "
            f"learning; floor = the classical baseline), with its 95% CI and two-sided "
            f"paired-bootstrap p-value over "
            f"{n_boot} resamples (by group, as the CIs) of the same evaluated examples. "
            f"Significant = p < {ALPHA}. "
            "'not paired' = the runs were evaluated on different examples. Claim = whether "
            "the difference may be stated as a finding (both runs converged or train "
            "nothing, neither is suspect, the CI excludes 0, the better run did not train "
            "on more data; 'Findings' below), else what stands in the way: a significant "
            "difference is not a finding while one run stopped on its budget.",
        ),
        ("table", table),
    ]


def _findings(
    runs: list[Run], tasks: list[str], comps: list[dict[str, Any]], n_boot: int
) -> list[Block]:
    """Guarded findings: a claim only where both runs finished honestly, neither is
    suspect and the paired CI excludes 0 (``verdicts``); else "inconclusive" + the fix."""
    head = headline_runs(runs)
    items = []
    if verdicts.pipeline_check(runs):
        items.append(
            "**Pipeline check, no finding drawn**: no trained run converged (each stopped "
            "on its budget before converging), so any ranking below could be overturned "
            "by a longer run. Raise the budgets (epochs / max_steps / max_seconds) to get "
            "findings."
        )
    for task in tasks:
        rs = [r for (t, _), r in head.items() if t == task]
        ranked = sorted((r for r in rs if not math.isnan(r.main)), key=lambda r: -r.main)
        if not ranked:
            continue
        text = f"**{task}** ({ranked[0].main_metric}): "
        comps_of_task = [c for c in comps if c["task"] == task]
        sentences = []
        for c in comps_of_task:
            sentences.append(verdicts.verdict(c["a"], c["b"], c["cmp"]))
            sentences += _at_same_size(runs, c["a"], c["b"])
        sentences += _variant_findings(runs, head, task)
        if not comps_of_task:
            text += f"only {ranked[0].label} finished; nothing to compare. "
        items.append((text + _claims_first(sentences)).rstrip())
    failed = [r for r in runs if r.status in ("failed", "skipped")]
    if failed:
        items.append(f"{len(failed)} run(s) failed or were skipped; see 'Failed runs'.")
    intro = (
        "A finding says 'A beats B' only when both runs converged (or train nothing: ICL, "
        "zero-shot, merges), neither is suspect, the paired-bootstrap 95% CI of the "
        "difference excludes 0 and the better run did not train on more examples; "
        "otherwise it says 'inconclusive' and why. Where the two best runs trained on "
        "different amounts of data, the pair is also compared at the largest train size "
        "both finished ('At n=...')."
    )
    return [("h2", "Findings"), ("p", intro), ("ul", items)] if items else []


def _claims_first(sentences: list[tuple[bool, str]]) -> str:
    """The claims a task's comparisons allow, then the inconclusive ones (a reader looks
    for the first; the second say what to run next)."""
    claims = [text for allowed, text in sentences if allowed]
    undecided = [  # under that heading, each sentence need not say it again
        text.replace(": inconclusive — ", " — ", 1).replace(" — inconclusive: ", " — ", 1)
        for allowed, text in sentences
        if not allowed
    ]
    parts = []
    if claims:
        parts.append(f"**{len(claims)} finding(s):** " + " ".join(claims))
    if undecided:
        parts.append(f"**{len(undecided)} inconclusive:** " + " ".join(undecided))
    return " ".join(parts)


def _at_same_size(runs: list[Run], a: Run, b: Run) -> list[tuple[bool, str]]:
    """When the best runs of two labels differ in train size, the same claim at the
    largest size both labels finished (lowest seed): a method claim data cannot explain."""
    if a.train_size == b.train_size:
        return []

    def finished(label: str) -> dict[Any, Run]:
        out: dict[Any, Run] = {}
        for r in sorted(runs, key=lambda r: -r.seed):
            if r.done and r.task == a.task and r.label == label and not math.isnan(r.main):
                out[r.train_size] = r
        return out

    of_a, of_b = finished(a.label), finished(b.label)
    common = set(of_a) & set(of_b)
    if not common:
        return []
    size = max(common, key=size_key)
    a2, b2 = of_a[size], of_b[size]
    allowed, text = verdicts.verdict(a2, b2, compare(a2, b2))
    return [(allowed, f"At n={size_str(size)}: {text}")]


def _variant_findings(
    runs: list[Run], head: dict[tuple[str, str], Run], task: str
) -> list[tuple[bool, str]]:
    """A mixed-task adapter vs the single-task adapter of the same size and seed; a merged
    adapter vs the single-task adapter of this task among those it merged: (claim allowed,
    sentence) each."""
    found = []
    for other in (r for (t, _), r in head.items() if t == task):
        if not other.combined_adapter:
            continue
        singles = [
            r
            for r in runs
            if r.done
            and r.trained_adapter
            and not r.mixed
            and r.task == task
            and r.base_model == other.base_model  # a mixed adapter vs its own base model's
            and (
                r.id in other.deps
                if other.deps and not other.mixed
                else (r.train_size, r.seed) == (other.train_size, other.seed)
            )
        ]
        single = _best(singles)
        if single is None:
            continue
        cmp = compare(other, single)
        rel = (
            "matches"
            if other.main == single.main
            else ("is better than" if other.main > single.main else "is worse than")
        )
        sig = f", {_p_text(cmp['p'], cmp['n_boot'])}" if cmp else ""
        delta = other.main - single.main
        blockers = verdicts.claim_blockers(other, single, cmp, same_data=single.id in other.deps)
        guard = f" — inconclusive: {'; '.join(blockers)}" if blockers else ""
        found.append((
            not blockers,
            f"{other.label} {rel} single-task {single.label} at n={size_str(single.train_size)}"
            f" ({delta:+.3f}{sig}){guard}.",
        ))  # fmt: skip
    return found


def _lora_variants_section(runs: list[Run], tasks: list[str]) -> list[Block]:
    if not any(r.combined_adapter for r in runs):
        return []
    done = [r for r in runs if r.done and r.info.adapter]
    labels = _label_order(done)
    sizes = sorted({r.train_size for r in done}, key=size_key)
    table = Table(["task", "n"] + labels, [])
    for task in tasks:
        for size in sizes:
            cells = {}
            for r in done:
                if r.task == task and r.train_size == size:
                    cells.setdefault(r.label, r)
            if not cells:
                continue
            row = [task, size_str(size)] + [
                _fmt_ci(cells[lb]) if lb in cells else "" for lb in labels
            ]
            best = _best(list(cells.values()))
            for lb, r in cells.items():
                if best and r.main == best.main:
                    table.bold.add((len(table.rows), 2 + labels.index(lb)))
            table.rows.append(row)
    merge_note = (
        "Merged adapters are built from the single-task adapters the study config names "
        "(its merges entries: which sizes, the combination method); each is compared with "
        "its task's own adapter among them."
    )
    return [
        ("h2", "Single-task vs mixed-task vs merged LoRA"),
        ("p", "Main metric [95% CI] per task and train size. " + merge_note),
        ("table", table),
    ]
