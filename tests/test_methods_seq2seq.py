"""Seq2seq baseline: BERT2BERT warm start from a tiny BERT; protocol, targets, errors."""

import functools

import pytest

from ecomlm.data import load_splits
from ecomlm.methods import load_method, make_method
from ecomlm.methods.baselines.seq2seq import Seq2SeqMethod
from ecomlm.tasks import get_task
from ecomlm.tasks.desc_gen import DescGenExample
from ecomlm.tasks.review_summ import ReviewSummExample

SOURCE = "synthetic:n=16,dev=4,test=4"


@functools.cache
def _fit(task_name, model):
    splits = load_splits(task_name, SOURCE)
    config = {
        "model": model,
        "epochs": 1,
        "batch_size": 8,
        "max_source_length": 64,
        "max_target_length": 16,
        "max_new_tokens": 8,
        "num_beams": 2,
    }
    method = make_method("seq2seq", get_task(task_name), config)
    return method.fit(splits["train"], splits["dev"]), splits


@pytest.mark.parametrize("task_name", ["desc_gen", "review_summ"])
def test_fit_predict_save_load_same_predictions(tmp_path, tiny_bert, task_name):
    method, splits = _fit(task_name, tiny_bert)
    assert type(method.model).__name__ == "EncoderDecoderModel"
    preds = method.predict(splits["test"])
    assert len(preds) == len(splits["test"])
    assert all(isinstance(p.value, str) and p.valid for p in preds)
    method.save(tmp_path / "m")
    loaded = load_method(tmp_path / "m")
    assert isinstance(loaded, Seq2SeqMethod)
    assert [p.value for p in loaded.predict(splits["test"])] == [p.value for p in preds]
    # review_summ trains on every reference summary (synthetic data has 3 per product)
    per_example = 3 if task_name == "review_summ" else 1
    assert method.extra_cost["train_pairs"] == per_example * len(splits["train"])


def test_targets_start_after_the_decoder_start_token(tiny_bert):
    method, _ = _fit("desc_gen", tiny_bert)
    tok = method.tokenizer
    ids = method._label_ids("a red cotton shirt")
    assert ids[0] != tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert method.model.generation_config.decoder_start_token_id == tok.cls_token_id
    assert method.model.generation_config.eos_token_id == tok.sep_token_id


def test_empty_and_malformed_input(tiny_bert):
    method, splits = _fit("desc_gen", tiny_bert)
    assert method.predict([]) == []
    with pytest.raises(ValueError, match=r"example 1: field 'title'"):
        method.predict([splits["test"][0], DescGenExample(title=" ")])
    summ, _ = _fit("review_summ", tiny_bert)
    with pytest.raises(ValueError, match=r"example 0: field 'reviews'"):
        summ.predict([ReviewSummExample(reviews=["", " "])])


def test_training_without_references_is_a_clear_error(tiny_bert):
    method = Seq2SeqMethod(get_task("desc_gen"), Seq2SeqMethod.Config(model=tiny_bert))
    with pytest.raises(ValueError, match=r"example 0: field 'description'"):
        method.fit([DescGenExample(title="red shirt")])


def test_unsupported_task_is_a_clear_error():
    with pytest.raises(ValueError, match="does not support task 'esci'"):
        Seq2SeqMethod(get_task("esci"))


def _frozen_vs_trained(tiny_bert, freeze):
    splits = load_splits("desc_gen", SOURCE)
    config = {"model": tiny_bert, "epochs": 1, "max_source_length": 32, "max_target_length": 8}
    method = make_method("seq2seq", get_task("desc_gen"), {**config, "freeze_embeddings": freeze})
    method.fit(splits["train"][:8])
    return method


def test_output_layer_trains_by_default_and_freezes_on_request(tiny_bert):
    """The decoder's output layer is tied to its word embeddings; with the MiniLM warm start
    its transform starts random, so by default the vocabulary projection trains too."""
    from transformers import AutoModel

    init = AutoModel.from_pretrained(tiny_bert).get_input_embeddings().weight.detach()
    default = _frozen_vs_trained(tiny_bert, freeze=Seq2SeqMethod.Config().freeze_embeddings)
    out = default.model.get_output_embeddings().weight
    assert out.requires_grad and not out.detach().equal(init)
    frozen = _frozen_vs_trained(tiny_bert, freeze=True)
    out = frozen.model.get_output_embeddings().weight
    assert not out.requires_grad and out.detach().equal(init)


def test_learns_an_input_dependent_target_end_to_end(tiny_bert):
    """Decoder start, [SEP] end, label shift and cross-attention wired together: a tiny
    random BERT2BERT learns to write a target that depends on the source and stops."""
    data = [
        DescGenExample(title=f"{color} {kind}", description=f"a {color} one.")
        for color in ("red", "blue")
        for kind in ("shirt", "hat", "mug", "lamp")
    ]
    config = {"model": tiny_bert, "epochs": 150, "batch_size": 8, "lr": 3e-3, "warmup_ratio": 0.0,
              "num_beams": 1, "max_new_tokens": 8}  # fmt: skip
    method = make_method("seq2seq", get_task("desc_gen"), config).fit(data)
    preds = method.predict([DescGenExample(title="red mug"), DescGenExample(title="blue mug")])
    assert [p.value for p in preds] == ["a red one.", "a blue one."]


def test_warm_started_encoder_is_frozen_by_default(tiny_bert):
    """Trained jointly at the decoder's lr the warm-started encoder collapses to one output
    for every token; by default it stays fixed while decoder and cross-attention train."""
    from transformers import AutoModel

    init = AutoModel.from_pretrained(tiny_bert).state_dict()
    method = _frozen_vs_trained(tiny_bert, freeze=False)
    encoder = method.model.get_encoder()
    assert not any(p.requires_grad for p in encoder.parameters())
    assert all(v.equal(init[k]) for k, v in encoder.state_dict().items() if k in init)
    cross = method.model.decoder.base_model.encoder.layer[0].crossattention.self.query.weight
    assert cross.requires_grad
    splits = load_splits("desc_gen", SOURCE)
    config = {"model": tiny_bert, "epochs": 1, "max_source_length": 32, "max_target_length": 8,
              "freeze_encoder": False}  # fmt: skip
    joint = make_method("seq2seq", get_task("desc_gen"), config).fit(splits["train"][:8])
    changed = joint.model.get_encoder().state_dict()
    assert any(not v.equal(init[k]) for k, v in changed.items() if k in init)
