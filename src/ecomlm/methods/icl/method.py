"""Few-shot in-context learning: no training, k demonstrations in the prompt.

The prompt is the task's own chat prompt with demonstrations as earlier chat
turns: ``system``, then per demonstration ``user`` (the demo's prompt) and
``assistant`` (the demo's reference answer), then the test ``user`` turn.
Answers come from an OpenAI-compatible endpoint (``backend="openai"``) or a
local transformers model (``backend="local"``, default: bundled SmolLM2) and go
through ``task.parse``; unparseable answers and failed requests are invalid
predictions (scored as wrong), never exceptions.

``fit`` only stores the demonstration pool (and, for ``select="similar"``, its
MiniLM embeddings); ``save``/``load`` persist config (no secrets), pool and
embeddings.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecomlm.io import atomic_open, read_jsonl, write_json, write_jsonl
from ecomlm.methods.base import method_from_folder, method_header
from ecomlm.methods.icl.backends import (
    Budget,
    Completion,
    EngineBackend,
    LocalBackend,
    OpenAIBackend,
    ResponseCache,
    estimate_prompt_tokens,
)
from ecomlm.methods.icl.demos import SELECT_STRATEGIES, DemoSelector
from ecomlm.tasks.base import Messages, Prediction, Task, example_from_dict, example_to_dict

log = logging.getLogger(__name__)

BACKENDS = ("local", "openai")
# Answer lengths per task: a label; BIO tags for a short query; a summary; a description.
# Context window assumed for a remote model when max_context_tokens is not given.
DEFAULT_REMOTE_CONTEXT = 8192


def build_messages(task: Task, demos: list[Any], example: Any) -> Messages:
    """System prompt, one user/assistant turn pair per demonstration, then the test input."""
    base = task.messages(example)
    messages = [m for m in base if m["role"] == "system"]
    for demo in demos:
        messages += [m for m in task.messages(demo) if m["role"] == "user"]
        messages.append({"role": "assistant", "content": task.reference(demo)})
    return messages + [m for m in base if m["role"] != "system"]


def fit_demos(
    task: Task,
    demos: list[Any],
    example: Any,
    count_tokens: Any,
    max_prompt_tokens: int | None,
    nearest_last: bool = False,
) -> tuple[Messages, int]:
    """Messages with as many demonstrations (priority order) as fit the prompt budget.

    Demonstrations are dropped from the tail of the priority list (farthest / last
    drawn first). ``nearest_last`` puts the highest-priority one next to the test input.
    Returns (messages, demonstrations used).
    """
    n = len(demos)
    while True:
        chosen = demos[:n][::-1] if nearest_last else demos[:n]
        messages = build_messages(task, chosen, example)
        if n == 0 or max_prompt_tokens is None or count_tokens(messages) <= max_prompt_tokens:
            return messages, n
        n -= 1


def failure_kind(error: str) -> str:
    """A short category for a request failure (for the counts in cost.json)."""
    if "max_seconds" in error:
        return "budget_max_seconds"
    if "max_requests" in error:
        return "budget_max_requests"
    if error.startswith("timeout"):
        return "timeout"
    match = re.match(r"http (\d+)", error)
    if match:
        return f"http_{match.group(1)}"
    if error.startswith("connection error"):
        return "connection_error"
    return "other"


class IclMethod:
    name = "icl"
    # what it is (``ecomlm.methods.base.MethodInfo``): k demonstrations, no training
    family = "icl"
    trains = False
    uses_llm = True
    k_shot = True
    estimate = (10.0, 0.0, 0.6)

    @dataclass
    class Config:
        # "openai" (any compatible endpoint), "local" (transformers in-process) or
        # "auto": openai when an endpoint is given, else local.
        backend: str = "auto"
        endpoint: str | None = None  # base URL for backend="openai", e.g. http://host:8000/v1
        model: str = "smollm2"  # endpoint model name, or local bundled name / path / HF id
        api_key_env: str = "OPENAI_API_KEY"  # env var holding the key (never saved or logged)
        model_revision: str = ""  # remote model version: a new value invalidates cached answers
        # local backend: "auto" = llama.cpp when installed and the model is GGUF (bundled
        # names), else transformers in-process; or "llama.cpp" | "transformers"
        engine: str = "auto"
        constrained: bool = True  # local: answers follow the task's grammar (always parse)
        # openai: ask the server to constrain answers to the task's output space (vLLM
        # guided decoding: guided_choice for labels, guided_regex for e.g. QueryNER); a
        # server that rejects the fields (HTTP 400/422) gets plain requests, answers parsed
        guided: bool = True
        k: int = 4  # demonstrations per prompt (0 = zero-shot)
        select: str = "random"  # random | balanced (classification) | similar (MiniLM kNN)
        encoder: str = "minilm"  # embedding encoder for select="similar"
        pool_size: int | None = 5000  # cap on the demonstration pool (seeded sample of train)
        max_context_tokens: int | None = None  # model context; None: local model's / 8192
        max_new_tokens: int | None = None  # None: per-task default
        temperature: float = 0.0
        concurrency: int = 4  # parallel requests (openai)
        max_retries: int = 4  # per request, on 429 / 5xx / timeouts / connection errors
        retry_backoff: float = 1.0  # first backoff in seconds, doubled per retry
        timeout: float = 30.0  # seconds per request
        max_requests: int | None = None  # budget: HTTP requests (incl. retries) per predict
        max_seconds: float | None = None  # budget: wall clock per predict
        cache_dir: str | None = None  # None: $ECOMLM_CACHE/icl-responses; "off": no cache
        tokenizer: str | None = None  # openai: tokenizer for counting; None: ~4 chars/token
        price_input_per_1k: float | None = None  # currency per 1k prompt tokens
        price_output_per_1k: float | None = None  # currency per 1k completion tokens
        batch_size: int = 8  # local generation batch
        dtype: str = "float32"  # local
        device: str = "cpu"  # local
        seed: int = 0

    def __init__(self, task: Task, config: Config | None = None):
        self.task = task
        self.config = config or self.Config()
        c = self.config
        if c.backend not in (*BACKENDS, "auto"):
            raise ValueError(
                f"icl backend={c.backend!r}; choose one of auto, {', '.join(BACKENDS)}"
            )
        self.backend_name = c.backend
        if c.backend == "auto":
            self.backend_name = "openai" if c.endpoint else "local"
        if self.backend_name == "local" and c.endpoint:
            raise ValueError(
                f"icl endpoint={c.endpoint!r} is only used by backend='openai' (or 'auto')"
            )
        if self.backend_name == "openai" and not c.endpoint:
            raise ValueError(
                "icl backend='openai' needs endpoint=<base URL>, e.g. http://127.0.0.1:8000/v1 "
                "(vLLM, llama.cpp, TGI, Ollama) or https://api.openai.com/v1"
            )
        if self.backend_name == "local" and c.temperature != 0:
            raise ValueError("icl backend='local' decodes greedily: set temperature=0")
        if c.select not in SELECT_STRATEGIES:
            raise ValueError(
                f"icl select={c.select!r}; choose one of {', '.join(SELECT_STRATEGIES)}"
            )
        for field, value, low in (
            ("k", c.k, 0),
            ("max_retries", c.max_retries, 0),
            ("concurrency", c.concurrency, 1),
            ("batch_size", c.batch_size, 1),
        ):
            if value < low:
                raise ValueError(f"icl {field}={value}: must be >= {low}")
        if c.timeout <= 0:
            raise ValueError(f"icl timeout={c.timeout}: must be > 0 seconds")
        if c.select == "balanced" and task.labels is None:
            raise ValueError(
                f"icl select='balanced' needs a classification task; {task.name!r} has no labels: "
                "use select='random' or 'similar'"
            )
        self.pool: list[Any] = []
        self.selector: DemoSelector | None = None
        self._backend: Any = None
        self._counter: Any = None
        self.extra_cost: dict[str, Any] = {}
        self.details: list[dict[str, Any]] = []  # per example of the last predict

    # ------------------------------------------------------------------ fit / save / load

    def fit(self, train: list[Any], dev: list[Any] | None = None) -> IclMethod:
        pool = [ex for ex in train if self.task.gold(ex) is not None]
        if self.config.pool_size is not None and len(pool) > self.config.pool_size:
            rng = random.Random(self.config.seed)
            pool = [pool[i] for i in sorted(rng.sample(range(len(pool)), self.config.pool_size))]
        if self.config.k > 0 and not pool:
            raise ValueError(
                f"icl k={self.config.k} needs labelled training examples as demonstrations, "
                "but the training set has none: give training data or use k=0"
            )
        self._set_pool(pool)
        return self

    def _set_pool(self, pool: list[Any], embeddings: np.ndarray | None = None) -> None:
        c = self.config
        self.pool = pool
        self.selector = DemoSelector(
            self.task, pool, c.k, c.select, seed=c.seed, encoder=c.encoder, embeddings=embeddings
        )

    def save(self, path: str | Path) -> None:
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        write_jsonl(out / "pool.jsonl", (example_to_dict(ex) for ex in self.pool))
        embeddings = self.selector.embeddings if self.selector is not None else None
        if embeddings is not None:
            with atomic_open(out / "embeddings.npy", "wb") as f:
                np.save(f, embeddings)
        write_json(out / "method.json", method_header(self))

    @classmethod
    def load(cls, path: str | Path) -> IclMethod:
        folder = Path(path)
        method, header = method_from_folder(cls, folder)
        pool_file = folder / "pool.jsonl"
        pool = [
            example_from_dict(method.task.example_type, row, where=f"{pool_file}: ")
            for row in read_jsonl(pool_file)
        ]
        emb_file = folder / "embeddings.npy"
        method._set_pool(pool, np.load(emb_file) if emb_file.exists() else None)
        return method

    # ------------------------------------------------------------------ predict

    def max_new_tokens(self) -> int:
        if self.config.max_new_tokens is not None:
            return self.config.max_new_tokens
        return self.task.max_new_tokens

    def backend(self) -> Any:
        if self._backend is None:
            c = self.config
            if self.backend_name == "local":
                backend_type = EngineBackend if self._use_engine() else LocalBackend
                self._backend = backend_type(c.model, c.batch_size, c.dtype, c.device)
                self._counter = self._backend.count_tokens
            else:
                self._counter = self._remote_counter()
                self._backend = OpenAIBackend(
                    c.endpoint,
                    c.model,
                    os.environ.get(c.api_key_env),
                    timeout=c.timeout,
                    max_retries=c.max_retries,
                    retry_backoff=c.retry_backoff,
                    concurrency=c.concurrency,
                    temperature=c.temperature,
                    seed=c.seed,
                    revision=c.model_revision,
                    count_tokens=self._counter,
                )
        return self._backend

    def _use_engine(self) -> bool:
        from ecomlm.methods.llm.engine import engine_available
        from ecomlm.models import BUNDLED_LLMS

        engine = self.config.engine
        if engine not in ("auto", "llama.cpp", "transformers"):
            raise ValueError(f"icl engine={engine!r}; choose auto, llama.cpp or transformers")
        if engine == "auto":
            return engine_available() and self.config.model in BUNDLED_LLMS
        return engine == "llama.cpp"

    def _answer_spaces(self, examples: list[Any], kind: str) -> list[str | None] | None:
        """The task's answer space per example, as a GBNF grammar (llama.cpp) or a regex
        (transformers); None when the task has none or constraining is off."""
        space = getattr(self.task, kind, None)
        if not self.config.constrained or space is None:
            return None
        return [space(ex) for ex in examples]

    def _guided_fields(self, examples: list[Any]) -> list[dict | None] | None:
        """Per example, the vLLM guided-decoding fields of the task's closed output space."""
        if not (self.config.guided and self.config.constrained):
            return None
        if self.task.labels:
            return [{"guided_choice": list(self.task.labels)}] * len(examples)
        regexes = self._answer_spaces(examples, "answer_regex")
        return [{"guided_regex": r} if r else None for r in regexes] if regexes else None

    def _remote_counter(self) -> Any:
        if self.config.tokenizer is None:
            return estimate_prompt_tokens
        from transformers import AutoTokenizer

        from ecomlm.methods.llm.causal_lm import prompt_text
        from ecomlm.models import llm_path

        tok = AutoTokenizer.from_pretrained(llm_path(self.config.tokenizer))
        return lambda messages: len(
            tok(prompt_text(tok, messages), add_special_tokens=False).input_ids
        )

    def max_prompt_tokens(self) -> int:
        c = self.config
        if c.max_context_tokens is not None:
            context = c.max_context_tokens
        elif self.backend_name == "local":
            context = self.backend().context_limit()
        else:
            context = DEFAULT_REMOTE_CONTEXT
        return max(1, context - self.max_new_tokens())

    def prompts(self, examples: list[Any]) -> tuple[list[Messages], list[int]]:
        """Chat messages per example and the number of demonstrations each one kept."""
        if self.selector is None:
            raise RuntimeError("IclMethod.predict called before fit (no demonstration pool)")
        self.backend()  # built first: it provides the token counter fit_demos uses
        limit = self.max_prompt_tokens()
        picks = self.selector.select(examples)
        messages, used = [], []
        for ex, idx in zip(examples, picks, strict=True):
            m, n = fit_demos(
                self.task,
                [self.pool[i] for i in idx],
                ex,
                self._counter,
                limit,
                nearest_last=self.config.select == "similar",
            )
            messages.append(m)
            used.append(n)
        return messages, used

    def _cache(self) -> ResponseCache | None:
        d = self.config.cache_dir
        if d is not None and d.lower() in ("", "off", "none", "false"):
            return None
        if d is None:
            from ecomlm.models import cache_dir

            d = str(cache_dir() / "icl-responses")
        return ResponseCache(d)

    def predict(self, examples: list[Any]) -> list[Prediction]:
        c = self.config
        messages, used = self.prompts(examples)
        backend = self.backend()
        max_new = self.max_new_tokens()
        params = backend.params(max_new)
        cache = self._cache()
        identity = backend.identity()
        if self.backend_name == "local" and self._answer_spaces(examples[:1], "answer_regex"):
            identity = {**identity, "constrained": True}
        if self.backend_name == "openai" and self._guided_fields(examples[:1]):
            identity = {**identity, "guided": True}
        keys = [ResponseCache.key(identity, m, params) for m in messages]

        completions: list[Completion | None] = [None] * len(examples)
        if cache is not None:
            for i, key in enumerate(keys):
                hit = cache.get(key)
                if hit is not None:
                    completions[i] = Completion(
                        text=hit["text"],
                        prompt_tokens=int(hit.get("prompt_tokens", 0)),
                        completion_tokens=int(hit.get("completion_tokens", 0)),
                        tokens_estimated=bool(hit.get("tokens_estimated", False)),
                        cached=True,
                    )
        todo = [i for i, done in enumerate(completions) if done is None]

        def store(j: int, done: Completion) -> None:
            if cache is not None and done.text is not None and done.error is None:
                cache.put(
                    keys[todo[j]],
                    {
                        "text": done.text,
                        "prompt_tokens": done.prompt_tokens,
                        "completion_tokens": done.completion_tokens,
                        "tokens_estimated": done.tokens_estimated,
                        "model": c.model,
                    },
                )

        budget = Budget(c.max_requests, c.max_seconds)
        todo_messages = [messages[i] for i in todo]
        todo_examples = [examples[i] for i in todo]
        if isinstance(backend, EngineBackend):
            grammars = self._answer_spaces(todo_examples, "answer_grammar")
            fresh = backend.complete(todo_messages, max_new, budget, store, grammars)
        elif isinstance(backend, LocalBackend):
            regexes = self._answer_spaces(todo_examples, "answer_regex")
            fresh = backend.complete(todo_messages, max_new, budget, store, regexes)
        else:
            guides = self._guided_fields(todo_examples)
            fresh = backend.complete(todo_messages, max_new, budget, store, guides)
        for i, done in zip(todo, fresh, strict=True):
            completions[i] = done

        predictions = []
        for ex, done in zip(examples, completions, strict=True):
            if done.text is not None:
                predictions.append(self.task.parse(done.text, ex))
            else:  # no answer: the task's "empty" prediction, marked invalid
                empty = self.task.parse("", ex)
                predictions.append(
                    Prediction(value=empty.value, valid=False, raw=None, error=done.error)
                )
        self.details = [
            {"demos_used": n, "cached": d.cached, "retries": d.retries, "error": d.error}
            for n, d in zip(used, completions, strict=True)
        ]
        self.extra_cost = self._cost(completions, used, predictions)
        return predictions

    def _cost(
        self, completions: list[Completion], used: list[int], predictions: list[Prediction]
    ) -> dict[str, Any]:
        c = self.config
        sent = [d for d in completions if not d.cached]
        failures = [d.error for d in completions if d.error]
        prompt_tokens = sum(d.prompt_tokens for d in sent)
        completion_tokens = sum(d.completion_tokens for d in sent)
        n = max(len(predictions), 1)
        cost: dict[str, Any] = {
            "icl_backend": self.backend_name,
            "inference_engine": getattr(self._backend, "engine_name", None)
            or ("transformers" if self.backend_name == "local" else "endpoint"),
            "icl_model": c.model,
            "icl_k": c.k,
            "icl_select": c.select,
            "requests_sent": sum(d.requests for d in sent),
            "cache_hits": sum(d.cached for d in completions),
            # no request reached the endpoint: every answer is a stored one
            "answers_all_from_cache": bool(completions) and all(d.cached for d in completions),
            "retries": sum(d.retries for d in sent),
            "failures": len(failures),
            "failure_kinds": dict(Counter(failure_kind(e) for e in failures)),
            "invalid_answers": sum(not p.valid for p in predictions),
            "invalid_rate": round(sum(not p.valid for p in predictions) / n, 4),
            "prompt_tokens_sent": prompt_tokens,
            "completion_tokens": completion_tokens,
            "tokens_estimated": any(d.tokens_estimated for d in sent if d.text is not None),
            "cached_prompt_tokens": sum(d.prompt_tokens for d in completions if d.cached),
            "demos_used_mean": round(float(np.mean(used)), 3) if used else 0.0,
            "demos_used_hist": {str(k): v for k, v in sorted(Counter(used).items())},
        }
        if failures:
            cost["failure_examples"] = sorted(set(failures))[:5]
        if self.backend_name == "openai":  # how the server's answers were constrained
            accepted = getattr(self._backend, "guided_accepted", None)
            outcome = {True: "server", False: "rejected: answers parsed", None: "not sent"}
            cost["guided_decoding"] = outcome[accepted] if c.guided and c.constrained else "off"
            cost["guided_answers"] = sum(d.guided for d in sent)
        if c.price_input_per_1k is not None or c.price_output_per_1k is not None:
            cost["estimated_cost"] = round(
                prompt_tokens / 1000 * (c.price_input_per_1k or 0.0)
                + completion_tokens / 1000 * (c.price_output_per_1k or 0.0),
                6,
            )
        return cost
