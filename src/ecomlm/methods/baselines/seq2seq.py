"""Fine-tuned seq2seq baseline for generation tasks (the task's ``source_text`` ->
``target_texts``: ``review_summ``, ``desc_gen``).

``model`` is a T5/BART folder or Hugging Face id (``AutoModelForSeq2SeqLM``), or an
encoder-only BERT — by default the bundled MiniLM — which is warm-started into a
BERT2BERT ``EncoderDecoderModel`` (Rothe et al., 2020): encoder and decoder both start
from the BERT weights; the decoder's cross-attention (and, for MiniLM, which has no MLM
head, the LM-head transform) starts random. By default the warm-started encoder stays
frozen: trained jointly at the decoder's learning rate it collapsed (every token got the
same output) and the decoder ignored the source (docs/results_baselines.md). Beam search
and length limits are configurable; dev evaluation during training is greedy for speed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecomlm.data.splits import dev_subset
from ecomlm.io import read_json, write_json
from ecomlm.methods.base import METHOD_FILE, method_from_folder, method_header
from ecomlm.methods.baselines.hf_train import (
    check_examples,
    length_sorted_batches,
    loop_options,
    pad_batch,
    pick_device,
    require_task,
    seed_all,
    train_loop,
    training_cost,
)
from ecomlm.tasks.base import Prediction


@dataclass
class Seq2SeqConfig:
    model: str = "minilm"  # encoder name/path (-> BERT2BERT) or a T5/BART id/path
    source_prefix: str = ""  # e.g. "summarize: " for T5
    max_source_length: int = 256
    max_target_length: int = 96
    epochs: int = 10  # the most epochs; early stopping on dev usually ends sooner
    batch_size: int = 8
    lr: float = 5e-4  # cross-attention and the LM head transform start random
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    tie_encoder_decoder: bool = False  # BERT2BERT only: share encoder/decoder weights
    freeze_encoder: bool = True  # BERT2BERT only (untied): train decoder + cross-attention
    freeze_embeddings: bool = False  # True: keep word embeddings (and the tied output layer) fixed
    patience: int = 2  # dev evaluations without improvement before stopping
    min_delta: float = 0.0  # a dev gain must exceed this to count as improvement
    max_seconds: float | None = None  # wall-clock training budget (None = epochs only)
    eval_every: int = 0  # steps between dev evaluations; 0 = once per epoch
    max_dev: int = 64  # dev examples generated for early stopping (drawn across the split)
    num_beams: int = 4
    max_new_tokens: int = 96
    min_new_tokens: int = 0
    length_penalty: float = 1.0
    no_repeat_ngram_size: int = 3
    eval_num_beams: int = 1  # beams for dev evaluation during training
    eval_batch_size: int = 16
    seed: int = 0
    device: str = "auto"
    work_dir: str | None = None  # checkpoints (<work_dir>/checkpoint): a re-run resumes


def _is_encoder_decoder_folder(path: str) -> bool:
    from transformers import AutoConfig

    return bool(getattr(AutoConfig.from_pretrained(path), "is_encoder_decoder", False))


class Seq2SeqMethod:
    name = "seq2seq"
    Config = Seq2SeqConfig
    family = "seq2seq"  # what it is (``ecomlm.methods.base.MethodInfo``)
    lr_grid = (2e-4, 5e-4, 1e-3)
    estimate = (10.0, 0.15, 0.25)

    def __init__(self, task: Any, config: Seq2SeqConfig | None = None) -> None:
        supported = hasattr(task, "source_text") and hasattr(task, "target_texts")
        require_task(self.name, task, supported, "a generation task (source_text, target_texts)")
        self.task = task
        self.config = config or Seq2SeqConfig()
        self.model: Any = None
        self.tokenizer: Any = None
        self.extra_cost: dict[str, Any] = {}
        self.fit_log: dict[str, Any] = {}  # dev score per evaluation, saved in method.json
        self.training_record: dict[str, Any] = {}

    # ------------------------------------------------------------------ model

    def _build(self) -> None:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, EncoderDecoderModel

        from ecomlm.models import encoder_path

        cfg = self.config
        path = encoder_path(cfg.model)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if _is_encoder_decoder_folder(path):
            self.model = AutoModelForSeq2SeqLM.from_pretrained(path)
            return
        tok = self.tokenizer
        if tok.cls_token_id is None or tok.sep_token_id is None:
            raise ValueError(
                f"model {cfg.model!r} is neither a seq2seq model nor a BERT-style encoder "
                "with [CLS]/[SEP] tokens; pass a T5/BART id or path, or a BERT encoder"
            )
        model = EncoderDecoderModel.from_encoder_decoder_pretrained(
            path, path, tie_encoder_decoder=cfg.tie_encoder_decoder
        )
        for conf in (model.config, model.generation_config):
            conf.decoder_start_token_id = tok.cls_token_id
            conf.bos_token_id = tok.cls_token_id
            conf.eos_token_id = tok.sep_token_id
            conf.pad_token_id = tok.pad_token_id
        model.config.vocab_size = model.config.decoder.vocab_size
        self.model = model

    def _warm_started(self) -> bool:
        return type(self.model).__name__ == "EncoderDecoderModel"

    def _source_ids(self, ex: Any) -> list[int]:
        text = self.config.source_prefix + self.task.source_text(ex)
        return self.tokenizer(text, truncation=True, max_length=self.config.max_source_length)[
            "input_ids"
        ]

    def _label_ids(self, text: str) -> list[int]:
        ids = self.tokenizer(
            text_target=text, truncation=True, max_length=self.config.max_target_length
        )["input_ids"]
        if self._warm_started() and ids and ids[0] == self.tokenizer.cls_token_id:
            ids = ids[1:]  # [CLS] is the decoder start token; the target is "w1 .. wn [SEP]"
        return ids

    # ------------------------------------------------------------------ protocol

    def fit(self, train: list[Any], dev: list[Any] | None = None) -> Seq2SeqMethod:
        cfg = self.config
        check_examples(self.task, train, need_gold=True)
        if dev:
            check_examples(self.task, dev, need_gold=True)
        seed_all(cfg.seed)
        self._build()
        if cfg.freeze_embeddings:
            for emb in {id(e): e for e in self._embeddings()}.values():
                emb.weight.requires_grad_(False)
        if cfg.freeze_encoder and self._warm_started() and not cfg.tie_encoder_decoder:
            # Trained jointly at a decoder-friendly lr, the warm-started encoder collapses
            # (every token gets the same output) and the decoder turns into a source-blind
            # language model; frozen, it keeps its pretrained features (and steps are faster).
            self.model.get_encoder().requires_grad_(False)
        features = []
        for ex in train:
            source = self._source_ids(ex)
            for target in self.task.target_texts(ex):
                labels = self._label_ids(target)
                features.append(
                    {"input_ids": source, "attention_mask": [1] * len(source), "labels": labels}
                )
        dev_set = dev_subset(dev, cfg.max_dev, self.task)

        def evaluate() -> float:
            preds = self._generate(dev_set, num_beams=cfg.eval_num_beams)
            return self.task.score(dev_set, preds)[self.task.main_metric]

        with warnings.catch_warnings():
            # EncoderDecoderModel warns on every loss computed from labels (a v4.12 note).
            warnings.filterwarnings("ignore", message="Version v4.12.0 introduces")
            warnings.filterwarnings("ignore", message="To copy construct from a tensor")
            log = train_loop(
                self.model,
                features,
                pad_id=self.tokenizer.pad_token_id,
                evaluate=evaluate if dev_set else None,
                **loop_options(cfg),
                dev_metric=self.task.main_metric,
                device=pick_device(cfg.device),
                desc=f"seq2seq/{self.task.name}",
            )
        self.training_record = log["training_record"]
        self.extra_cost = training_cost(self.model, log, train_pairs=len(features))
        self.fit_log = log
        self.resumed_seconds = log["resumed_seconds"]  # a resumed fit reports all of it
        return self

    def _embeddings(self) -> list[Any]:
        embs = [self.model.get_input_embeddings()]
        decoder = getattr(self.model, "get_decoder", lambda: None)()
        if decoder is not None and hasattr(decoder, "get_input_embeddings"):
            embs.append(decoder.get_input_embeddings())
        return embs

    def predict(self, examples: list[Any]) -> list[Prediction]:
        if not examples:
            return []
        if self.model is None:
            raise RuntimeError("Seq2SeqMethod.predict called before fit() or load()")
        check_examples(self.task, examples)
        return self._generate(examples, num_beams=self.config.num_beams)

    def _generate(self, examples: list[Any], num_beams: int) -> list[Prediction]:
        import torch

        cfg = self.config
        device = next(self.model.parameters()).device
        sources = [self._source_ids(ex) for ex in examples]
        out: list[Prediction | None] = [None] * len(examples)
        self.model.eval()
        with torch.inference_mode():
            for idx in length_sorted_batches([len(s) for s in sources], cfg.eval_batch_size):
                rows = [{"input_ids": sources[i], "attention_mask": [1] * len(sources[i])}
                        for i in idx]  # fmt: skip
                batch = pad_batch(rows, self.tokenizer.pad_token_id, str(device))
                generated = self.model.generate(
                    **batch,
                    num_beams=num_beams,
                    max_new_tokens=cfg.max_new_tokens,
                    min_new_tokens=cfg.min_new_tokens,
                    length_penalty=cfg.length_penalty,
                    no_repeat_ngram_size=cfg.no_repeat_ngram_size,
                    early_stopping=num_beams > 1,
                    do_sample=False,
                )
                texts = self.tokenizer.batch_decode(
                    generated, skip_special_tokens=True, clean_up_tokenization_spaces=True
                )
                for i, text in zip(idx, texts, strict=True):
                    out[i] = Prediction(value=text.strip(), raw=text)
        return out  # type: ignore[return-value]

    def save(self, path: str | Path) -> None:
        if self.model is None:
            raise RuntimeError("Seq2SeqMethod.save called before fit()")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        write_json(path / METHOD_FILE, {**method_header(self), "fit_log": self.fit_log})

    @classmethod
    def load(cls, path: str | Path) -> Seq2SeqMethod:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, EncoderDecoderModel

        path = Path(path)
        method, header = method_from_folder(cls, path)
        method.tokenizer = AutoTokenizer.from_pretrained(path)
        model_type = read_json(path / "config.json").get("model_type")
        auto = EncoderDecoderModel if model_type == "encoder-decoder" else AutoModelForSeq2SeqLM
        method.model = auto.from_pretrained(path).to(pick_device(method.config.device)).eval()
        return method
