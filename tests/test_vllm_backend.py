"""vLLM backend: the parts that run without a GPU (availability, ranks, run reading, fallback).

The vLLM engine itself needs vLLM and a CUDA GPU; ``benchmarks/bench_vllm.py``
exercises it there. Here: ``vllm_available`` is False on this CPU machine, the
label scoring maths match ``llm.score_labels``'s definition, and the fallback
predictor gives the same predictions as ``LoraMethod.predict`` in request order.
"""

from __future__ import annotations

import math

import pytest
import torch

from ecomlm.methods.llm.lora import LoraMethod
from ecomlm.scale.vllm_backend import (
    TransformersLoraPredictor,
    label_scores,
    predictor_for_runs,
    read_adapter_run,
    vllm_available,
    vllm_lora_rank,
)
from ecomlm.tasks.esci import EsciExample, EsciTask


def test_vllm_not_available_without_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert vllm_available() is False


def test_lora_rank_rounds_up_to_vllm_values():
    assert vllm_lora_rank([4]) == 8
    assert vllm_lora_rank([16, 8]) == 16
    assert vllm_lora_rank([17]) == 32
    with pytest.raises(ValueError, match="exceeds"):
        vllm_lora_rank([1024])


def test_label_scores_normalise_by_length_and_softmax():
    scores = label_scores([-2.0, -3.0], [1, 3], ["A", "B"])
    a, b = math.exp(-2.0), math.exp(-1.0)
    assert scores["A"] == pytest.approx(a / (a + b))
    assert sum(scores.values()) == pytest.approx(1.0)
    summed = label_scores([-2.0, -3.0], [1, 3], ["A", "B"], normalize=False)
    assert summed["A"] == pytest.approx(math.exp(-2.0) / (math.exp(-2.0) + math.exp(-3.0)))


def test_fallback_reads_runs_and_keeps_request_order(tiny_llama, tmp_path):
    torch.set_num_threads(1)
    task = EsciTask()
    cfg = LoraMethod.Config(base_model=tiny_llama, r=4, max_steps=0, max_length=256)
    LoraMethod(task, cfg).fit([]).save(tmp_path / "run" / "model")
    run = read_adapter_run("esci", tmp_path / "run")
    assert run.task.name == "esci" and run.rank == 4 and run.base_model == tiny_llama
    examples = [
        EsciExample(query=q, product_title=t, label="Exact")
        for q, t in [("red shoes", "red leather shoes"), ("phone case", "black charger")]
    ]
    predictor = predictor_for_runs({"a": tmp_path / "run", "b": tmp_path / "run"})
    assert isinstance(predictor, TransformersLoraPredictor)
    direct = [p.value for p in predictor.predict("a", examples)]
    mixed = predictor.predict_mixed([("b", examples[1]), ("a", examples[0])])
    assert [p.value for p in mixed] == direct[::-1]
    with pytest.raises(KeyError, match="unknown adapter"):
        predictor.predict("c", examples)
    with pytest.raises(FileNotFoundError):
        read_adapter_run("x", tmp_path)
