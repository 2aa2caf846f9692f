"""Classical floors, CPU seconds each: what a team without deep learning would ship.

The task picks its floor (``classical_floor``; ``classify`` for any labelled task):

- ``classify`` (esci): TF-IDF over the task's ``classical_text`` (ESCI: typed query /
  product tokens and query-word overlap, ``qin=``/``qout=``) or the words of its
  ``input_text``, logistic regression; C picked on dev.
- ``crf`` (queryner): linear-chain CRF (sklearn-crfsuite) with word features in a ±2
  window over ``ex.tokens``.
- ``extractive`` (review_summ): centroid summarizer (TF-IDF, cosine to the product's
  centroid, redundancy filter); the word budget is learned from training summaries.
- ``template`` (desc_gen): attribute templates (title, brand, color, bullets); the
  template with the best dev ROUGE-L is kept.
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecomlm.io import atomic_path, write_json
from ecomlm.methods.base import METHOD_FILE, method_from_folder, method_header
from ecomlm.methods.baselines.hf_train import check_examples, require_task
from ecomlm.methods.convergence import training_record
from ecomlm.tasks.base import Prediction, classical_floor, task_hook

MODEL_FILE = "model.joblib"
_WORD = re.compile(r"\w+")
_SENT = re.compile(r"(?<=[.!?])\s+|\n+")

TEMPLATES = (
    "{title}.{bullets}",
    "{title}{by_brand}{in_color}.{bullets}",
    "The {title}{by_brand}{in_color}. {category_sentence}{bullets}",
)


@dataclass
class ClassicalConfig:
    # esci: logistic regression
    C: float = 1.0
    tune_c: bool = True  # try C x {0.1, 0.3, 1, 3, 10} and keep the best on dev accuracy
    max_features: int = 200_000
    class_weight: str = ""  # "" or "balanced"
    # queryner: CRF
    c1: float = 0.1
    c2: float = 0.1
    crf_iterations: int = 1000  # a cap: on real QueryNER L-BFGS converges after ~750
    # review_summ: extractive summary length; 0 = median training summary length
    max_words: int = 0
    # desc_gen: template index (-1 = pick the best on dev)
    template: int = -1
    seed: int = 0


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _word_features(tokens: list[str], i: int) -> dict[str, Any]:
    """CRF features of word ``i``: itself and its ±2 neighbours (lowercase, shape, affixes)."""
    feats: dict[str, Any] = {"bias": 1.0}
    for off in (-2, -1, 0, 1, 2):
        j = i + off
        if not 0 <= j < len(tokens):
            feats[f"{off}:pad"] = True
            continue
        w = tokens[j]
        lw = w.lower()
        feats[f"{off}:lower"] = lw
        feats[f"{off}:isdigit"] = w.isdigit()
        feats[f"{off}:hasdigit"] = any(c.isdigit() for c in w)
        if off == 0 or abs(off) == 1:
            feats[f"{off}:suf3"] = lw[-3:]
            feats[f"{off}:pre3"] = lw[:3]
        if off == 0:
            feats["suf2"] = lw[-2:]
            feats["shape"] = re.sub(r"\d+", "0", re.sub(r"[a-z]+", "a", re.sub(r"[A-Z]+", "A", w)))
            feats["len"] = min(len(w), 8)
            feats["position"] = min(i, 5)
            feats["from_end"] = min(len(tokens) - 1 - i, 5)
    return feats


def _sentences(reviews: list[str]) -> list[str]:
    out = []
    for review in reviews:
        out += [s.strip() for s in _SENT.split(review or "") if len(_words(s)) >= 3]
    return out


def _render(template: str, ex: Any) -> str:
    bullets = [b.strip().rstrip(".") for b in ex.bullets if b and b.strip()]
    text = template.format(
        title=ex.title.strip().rstrip("."),
        by_brand=f" by {ex.brand}" if ex.brand else "",
        in_color=f" in {ex.color}" if ex.color else "",
        category_sentence=f"A great choice in {ex.category}. " if ex.category else "",
        bullets="".join(f" {b}." for b in bullets),
    )
    return " ".join(text.split())


class ClassicalMethod:
    name = "classical"
    Config = ClassicalConfig
    family = "classical"  # what it is (``ecomlm.methods.base.MethodInfo``)
    estimate = (2.0, 0.002, 0.002)
    floors = ("classify", "crf", "extractive", "template")

    def __init__(self, task: Any, config: ClassicalConfig | None = None) -> None:
        floor = classical_floor(task)
        needs = f"labels or a classical_floor ({', '.join(self.floors)})"
        require_task(self.name, task, floor in self.floors, needs)
        self.task = task
        self.config = config or ClassicalConfig()
        self.model: Any = None  # fitted estimator (esci, queryner, review_summ) or None
        self.state: dict[str, Any] = {}  # small learned settings (word budget, template)
        self.extra_cost: dict[str, Any] = {}

    # ------------------------------------------------------------------ fit

    def fit(self, train: list[Any], dev: list[Any] | None = None) -> ClassicalMethod:
        check_examples(self.task, train, need_gold=True)
        if dev:
            check_examples(self.task, dev, need_gold=True)
        if not train:
            raise ValueError("no training examples")
        self.state = {"fitted": True}
        start = time.perf_counter()
        getattr(self, f"_fit_{self._kind}")(train, list(dev or []))
        self.training_record = training_record(
            None,
            stop_reason=self._solver_stop_reason(),
            dev_metric=self.task.main_metric if dev else None,
            steps=0,
            epochs=0.0,
            examples_seen=len(train),
            lr=None,
            train_seconds=time.perf_counter() - start,
            best_dev_score=self.extra_cost.get("best_dev_score"),
        )
        return self

    def _solver_stop_reason(self) -> str:
        """``budget`` when the iterative solver hit its iteration cap, else ``converged``;
        the summary / template floors fit nothing iteratively (``not_trained``)."""
        model = self.model
        if hasattr(model, "steps"):  # sklearn pipeline: the classifier is the last step
            model = model.steps[-1][1]
        if hasattr(model, "n_iter_") and hasattr(model, "max_iter"):
            return "budget" if max(model.n_iter_) >= model.max_iter else "converged"
        log = getattr(model, "training_log_", None)
        if log is not None and getattr(model, "max_iterations", None):
            return "budget" if len(log.iterations) >= model.max_iterations else "converged"
        return "not_trained"

    def _dev_score(self, dev: list[Any]) -> float:
        return self.task.score(dev, self.predict(dev))[self.task.main_metric]

    @property
    def _kind(self) -> str:
        """The floor the task declares (``classical_floor``): classify for any labelled
        task that does not say otherwise."""
        return str(classical_floor(self.task))

    def _classify_text(self, ex: Any) -> str:
        features = getattr(self.task, "classical_text", None)  # e.g. esci: typed overlap
        if features is not None:
            return features(ex)
        return " ".join(_words(task_hook(self.task, "input_text")(ex)))

    def _fit_classify(self, train: list[Any], dev: list[Any]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        cfg = self.config
        y = [self.task.gold(ex) for ex in train]
        if len(set(y)) < 2:
            raise ValueError(f"training data has a single label {y[0]!r}; need at least 2")
        X = [self._classify_text(ex) for ex in train]
        grid = [cfg.C * f for f in (0.1, 0.3, 1.0, 3.0, 10.0)] if cfg.tune_c and dev else [cfg.C]
        best = None
        for c in grid:
            self.model = make_pipeline(
                TfidfVectorizer(
                    token_pattern=r"\S+",
                    lowercase=False,
                    sublinear_tf=True,
                    max_features=cfg.max_features,
                ),
                LogisticRegression(
                    C=c,
                    max_iter=2000,
                    class_weight=cfg.class_weight or None,
                    random_state=cfg.seed,
                ),
            ).fit(X, y)
            score = self._dev_score(dev) if dev else 0.0
            if best is None or score > best[0]:
                best = (score, c, self.model)
        _, self.state["C"], self.model = best
        self.extra_cost = {"C": self.state["C"], "best_dev_score": best[0] if dev else None}

    def _fit_crf(self, train: list[Any], dev: list[Any]) -> None:
        import sklearn_crfsuite

        cfg = self.config
        self.model = sklearn_crfsuite.CRF(
            algorithm="lbfgs",
            c1=cfg.c1,
            c2=cfg.c2,
            max_iterations=cfg.crf_iterations,
            all_possible_transitions=True,
        )
        X = [[_word_features(ex.tokens, i) for i in range(len(ex.tokens))] for ex in train]
        self.model.fit(X, [ex.tags for ex in train])
        self.extra_cost = {"best_dev_score": self._dev_score(dev) if dev else None}

    def _fit_extractive(self, train: list[Any], dev: list[Any]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        corpus = [s for ex in train for s in _sentences(ex.reviews)] or [
            r for ex in train for r in ex.reviews
        ]
        self.model = TfidfVectorizer(sublinear_tf=True, stop_words="english").fit(corpus)
        lengths = [len(_words(s)) for ex in train for s in ex.summaries if s]
        self.state["max_words"] = self.config.max_words or int(statistics.median(lengths))
        self.extra_cost = {
            "max_words": self.state["max_words"],
            "best_dev_score": self._dev_score(dev) if dev else None,
        }

    def _fit_template(self, train: list[Any], dev: list[Any]) -> None:
        choices = [self.config.template] if self.config.template >= 0 else range(len(TEMPLATES))
        pick = dev or train[:200]  # without dev, choose on (a slice of) train: no parameters
        scored = []
        for t in choices:
            if not 0 <= t < len(TEMPLATES):
                raise ValueError(f"template must be -1 or 0..{len(TEMPLATES) - 1}, got {t}")
            self.state["template"] = t
            scored.append((self._dev_score(pick), t))
        best_score, self.state["template"] = max(scored)
        self.extra_cost = {"template": self.state["template"], "best_dev_score": best_score}

    # ------------------------------------------------------------------ predict

    def predict(self, examples: list[Any]) -> list[Prediction]:
        if not examples:
            return []
        if not self.state:
            raise RuntimeError("ClassicalMethod.predict called before fit() or load()")
        check_examples(self.task, examples)
        return getattr(self, f"_predict_{self._kind}")(examples)

    def _predict_classify(self, examples: list[Any]) -> list[Prediction]:
        probs = self.model.predict_proba([self._classify_text(ex) for ex in examples])
        classes = list(self.model.classes_)
        out = []
        for row in probs:
            scores = {lab: 0.0 for lab in self.task.labels}
            scores.update({c: round(float(p), 6) for c, p in zip(classes, row, strict=True)})
            out.append(Prediction(value=max(scores, key=scores.get), scores=scores))
        return out

    def _predict_crf(self, examples: list[Any]) -> list[Prediction]:
        X = [[_word_features(ex.tokens, i) for i in range(len(ex.tokens))] for ex in examples]
        return [Prediction(value=list(tags), raw=" ".join(tags)) for tags in self.model.predict(X)]

    def _predict_extractive(self, examples: list[Any]) -> list[Prediction]:
        import numpy as np

        budget = self.state["max_words"]
        out = []
        for ex in examples:
            sents = _sentences(ex.reviews) or [r.strip() for r in ex.reviews if r.strip()]
            vecs = self.model.transform(sents)
            centroid = np.asarray(vecs.mean(axis=0))
            sims = (vecs @ centroid.T).ravel()
            chosen: list[int] = []
            words = 0
            for i in np.argsort(-sims, kind="stable"):
                if words >= budget:
                    break
                if any((vecs[i] @ vecs[j].T).toarray()[0, 0] > 0.5 for j in chosen):
                    continue  # near-duplicate of a chosen sentence
                chosen.append(int(i))
                words += len(_words(sents[i]))
            text = " ".join(sents[i] for i in sorted(chosen))  # keep review order
            out.append(Prediction(value=text, raw=text))
        return out

    def _predict_template(self, examples: list[Any]) -> list[Prediction]:
        template = TEMPLATES[self.state["template"]]
        return [Prediction(value=t, raw=t) for t in (_render(template, ex) for ex in examples)]

    # ------------------------------------------------------------------ save / load

    def save(self, path: str | Path) -> None:
        import joblib

        if not self.state:
            raise RuntimeError("ClassicalMethod.save called before fit()")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.model is not None:
            with atomic_path(path / MODEL_FILE) as tmp:
                joblib.dump(self.model, tmp)
        write_json(path / METHOD_FILE, {**method_header(self), "state": self.state})

    @classmethod
    def load(cls, path: str | Path) -> ClassicalMethod:
        import joblib

        path = Path(path)
        method, header = method_from_folder(cls, path)
        method.state = dict(header["state"])
        if (path / MODEL_FILE).exists():
            method.model = joblib.load(path / MODEL_FILE)
        return method
