"""Fine-tuned BERT-style encoders: a classifier for any classification task (a
cross-encoder over the task's ``text_pair``, e.g. ESCI's query and product, else its
``input_text``) and a word-level token tagger for tagging tasks (``queryner``).

Default encoder: the bundled all-MiniLM-L6-v2 BERT (``ecomlm.models.encoder_path``);
any local folder or Hugging Face id works. The tagger labels the first word-piece of
each word (others get -100, ignored by the loss) and predicts one tag per word.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecomlm.data.splits import dev_subset
from ecomlm.io import write_json
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
from ecomlm.tasks.base import Prediction, task_hook, task_kind


@dataclass
class BertConfig:
    model: str = "minilm"  # bundled name, local folder or HF id
    max_length: int = 128  # word-pieces per input (query + product text for esci)
    epochs: int = 10  # the most epochs; early stopping on dev usually ends sooner
    batch_size: int = 16
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    freeze_embeddings: bool = True  # keep the word-embedding matrix fixed (2-3x faster on CPU)
    patience: int = 2  # dev evaluations without improvement before stopping
    min_delta: float = 0.0  # a dev gain must exceed this to count as improvement
    max_seconds: float | None = None  # wall-clock training budget (None = epochs only)
    eval_every: int = 0  # steps between dev evaluations; 0 = once per epoch
    max_dev: int = 500  # dev examples used for early stopping (drawn across the split)
    eval_batch_size: int = 64
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    # classification: draw training pairs with class-uniform probability (each epoch the
    # same size); unbalanced cross-entropy on ESCI learns "always Exact" (the prior)
    class_balance: bool = False
    dev_metric: str | None = None  # early-stopping metric (None: the task's main metric)
    # tagging: a linear-chain CRF output layer over the word scores (pytorch-crf), Viterbi
    # decoding; its transitions learn at crf_lr_scale x lr
    crf: bool = False
    crf_lr_scale: float = 100.0
    work_dir: str | None = None  # checkpoints (<work_dir>/checkpoint): a re-run resumes


def _word_starts(word_ids: list[int | None]) -> list[bool]:
    """Whether each word-piece is the first of its word (special tokens: False)."""
    return [w is not None and (i == 0 or word_ids[i - 1] != w) for i, w in enumerate(word_ids)]


def balanced_draw(labels: list[str], seed: int) -> list[int]:
    """``len(labels)`` indices drawn with replacement, every class equally likely."""
    import random
    from collections import Counter

    counts = Counter(labels)
    weights = [1.0 / counts[y] for y in labels]
    return random.Random(seed).choices(range(len(labels)), weights=weights, k=len(labels))


class BertMethod:
    name = "bert"
    Config = BertConfig
    family = "plm"  # what it is (``ecomlm.methods.base.MethodInfo``)
    lr_grid = (2e-5, 5e-5, 1e-4)
    estimate = (15.0, 0.15, 0.02)

    def __init__(self, task: Any, config: BertConfig | None = None) -> None:
        kind = task_kind(task)
        supported = kind == "tagging" or (kind == "classification" and bool(task.labels))
        require_task(self.name, task, supported, "a classification (labels) or tagging task")
        self.task = task
        self.config = config or BertConfig()
        if self.config.crf and kind != "tagging":
            raise ValueError(f"bert crf: true needs a tagging task; {task.name!r} is {kind}")
        self.labels: list[str] = []
        self.model: Any = None
        self.tokenizer: Any = None
        self.extra_cost: dict[str, Any] = {}
        self.fit_log: dict[str, Any] = {}  # dev score per evaluation, saved in method.json
        self.training_record: dict[str, Any] = {}

    @property
    def _tagger(self) -> bool:
        return task_kind(self.task) == "tagging"

    @property
    def _crf(self) -> bool:
        return self._tagger and self.config.crf

    # ------------------------------------------------------------------ encoding

    def _encode(self, ex: Any, with_label: bool) -> tuple[dict[str, Any], list[int | None]]:
        """Features of one example, plus the word index of each word-piece (tagger)."""
        tok, n = self.tokenizer, self.config.max_length
        if self._tagger:
            enc = tok(ex.tokens, is_split_into_words=True, truncation=True, max_length=n)
            word_ids = enc.word_ids()
            feats = dict(enc)
            if self._crf:  # the CRF reads each word's first piece
                feats["word_starts"] = [int(start) for start in _word_starts(word_ids)]
            if with_label:
                ids = {t: i for i, t in enumerate(self.labels)}
                labels, prev = [], None
                for w in word_ids:
                    labels.append(-100 if w is None or w == prev else ids.get(ex.tags[w], 0))
                    prev = w
                feats["labels"] = labels
            return feats, word_ids
        pair = task_hook(self.task, "text_pair")(ex)
        if pair is not None:  # a cross-encoder, e.g. query and product as a text pair
            enc = tok(pair[0], pair[1], truncation="longest_first", max_length=n)
        else:  # any other classification task: the task's own input text
            enc = tok(task_hook(self.task, "input_text")(ex), truncation=True, max_length=n)
        feats = dict(enc)
        if with_label:
            feats["labels"] = self.labels.index(self.task.gold(ex))
        return feats, []

    # ------------------------------------------------------------------ protocol

    def fit(self, train: list[Any], dev: list[Any] | None = None) -> BertMethod:
        from transformers import (
            AutoModelForSequenceClassification,
            AutoModelForTokenClassification,
            AutoTokenizer,
        )

        from ecomlm.models import encoder_path

        cfg = self.config
        check_examples(self.task, train, need_gold=True)
        if dev:
            check_examples(self.task, dev, need_gold=True)
        seed_all(cfg.seed)
        if self._tagger:
            tags = {t for ex in train for t in ex.tags} | {"O"}
            self.labels = ["O"] + sorted(tags - {"O"})
        else:
            self.labels = list(self.task.labels)
        path = encoder_path(cfg.model)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        auto = (
            AutoModelForTokenClassification if self._tagger else AutoModelForSequenceClassification
        )
        self.model = auto.from_pretrained(
            path,
            num_labels=len(self.labels),
            id2label=dict(enumerate(self.labels)),
            label2id={lab: i for i, lab in enumerate(self.labels)},
        )
        if cfg.freeze_embeddings:
            self.model.get_input_embeddings().weight.requires_grad_(False)
        if self._crf:
            from ecomlm.methods.baselines.crf_head import CrfTagger

            self.model = CrfTagger(self.model, len(self.labels), cfg.crf_lr_scale)
        device = pick_device(cfg.device)
        features = [self._encode(ex, with_label=True)[0] for ex in train]
        if cfg.class_balance and not self._tagger:
            features = [features[i] for i in balanced_draw(
                [self.task.gold(ex) for ex in train], cfg.seed)]  # fmt: skip
        dev_set = dev_subset(dev, cfg.max_dev, self.task)
        dev_metric = cfg.dev_metric or self.task.main_metric

        def evaluate() -> float:
            return self.task.score(dev_set, self.predict(dev_set))[dev_metric]

        log = train_loop(
            self.model,
            features,
            pad_id=self.tokenizer.pad_token_id,
            evaluate=evaluate if dev_set else None,
            **loop_options(cfg),
            dev_metric=dev_metric,
            device=device,
            desc=f"bert/{self.task.name}",
        )
        self.training_record = log["training_record"]
        self.extra_cost = training_cost(self.model, log)
        self.fit_log = log
        self.resumed_seconds = log["resumed_seconds"]  # a resumed fit reports all of it
        return self

    def predict(self, examples: list[Any]) -> list[Prediction]:
        import torch

        if not examples:
            return []
        if self.model is None:
            raise RuntimeError("BertMethod.predict called before fit() or load()")
        check_examples(self.task, examples)
        device = next(self.model.parameters()).device
        encoded = [self._encode(ex, with_label=False) for ex in examples]
        out: list[Prediction | None] = [None] * len(examples)
        self.model.eval()
        lengths = [len(f["input_ids"]) for f, _ in encoded]
        with torch.inference_mode():
            for idx in length_sorted_batches(lengths, self.config.eval_batch_size):
                batch = pad_batch([encoded[i][0] for i in idx], self.tokenizer.pad_token_id)
                batch = {k: v.to(device) for k, v in batch.items()}
                if self._crf:
                    for row, tag_ids in zip(idx, self.model.decode(**batch), strict=True):
                        out[row] = self._crf_tags(examples[row], encoded[row][1], tag_ids)
                    continue
                logits = self.model(**batch).logits
                probs = torch.softmax(logits.float(), -1).cpu()
                for row, i in enumerate(idx):
                    if self._tagger:
                        out[i] = self._word_tags(examples[i], encoded[i][1], probs[row])
                    else:
                        p = probs[row].tolist()
                        best = max(range(len(p)), key=p.__getitem__)
                        scores = {lab: round(v, 6) for lab, v in zip(self.labels, p, strict=True)}
                        out[i] = Prediction(value=self.labels[best], scores=scores)
        return out  # type: ignore[return-value]

    def _word_tags(self, ex: Any, word_ids: list[int | None], probs: Any) -> Prediction:
        """One tag per word from its first word-piece; words cut by truncation get 'O'."""
        tags = ["O"] * len(ex.tokens)
        seen: set[int] = set()
        for pos, w in enumerate(word_ids):
            if w is not None and w not in seen:
                seen.add(w)
                tags[w] = self.labels[int(probs[pos].argmax())]
        return Prediction(value=tags, raw=" ".join(tags))

    def _crf_tags(self, ex: Any, word_ids: list[int | None], tag_ids: list[int]) -> Prediction:
        """The decoded tags of the words the encoder saw, in order; truncated words 'O'."""
        words = [w for w, start in zip(word_ids, _word_starts(word_ids), strict=True) if start]
        tags = ["O"] * len(ex.tokens)
        for w, t in zip(words, tag_ids, strict=False):
            tags[w] = self.labels[t]
        return Prediction(value=tags, raw=" ".join(tags))

    def save(self, path: str | Path) -> None:
        if self.model is None:
            raise RuntimeError("BertMethod.save called before fit()")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        header = {**method_header(self), "labels": self.labels, "fit_log": self.fit_log}
        write_json(path / METHOD_FILE, header)

    @classmethod
    def load(cls, path: str | Path) -> BertMethod:
        from transformers import (
            AutoModelForSequenceClassification,
            AutoModelForTokenClassification,
            AutoTokenizer,
        )

        path = Path(path)
        method, header = method_from_folder(cls, path)
        method.labels = list(header["labels"])
        method.tokenizer = AutoTokenizer.from_pretrained(path)
        if method._crf:
            from ecomlm.methods.baselines.crf_head import CrfTagger

            device = pick_device(method.config.device)
            method.model = CrfTagger.from_pretrained(path).to(device).eval()
            return method
        auto = (
            AutoModelForTokenClassification
            if method._tagger
            else AutoModelForSequenceClassification
        )
        method.model = auto.from_pretrained(path).to(pick_device(method.config.device)).eval()
        return method
