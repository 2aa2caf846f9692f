"""Where ICL answers come from: an OpenAI-compatible endpoint or a local transformers model.

Both backends take chat messages and return one :class:`Completion` per request;
neither raises on a bad answer, a failed request or an exhausted budget (the
completion then carries ``error``). Only configuration mistakes the run cannot
recover from (bad API key, unknown model or URL) raise.

Shared pieces: :class:`Budget` (request count and wall-clock limits for a run)
and :class:`ResponseCache` (one JSON file per response, keyed by a hash of
model, messages and decoding parameters, written atomically).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecomlm.io import read_json, write_json
from ecomlm.redact import redact
from ecomlm.tasks.base import Messages

log = logging.getLogger(__name__)

MAX_RETRY_WAIT = 60.0  # seconds; caps Retry-After and exponential backoff


@dataclass
class Completion:
    text: str | None = None  # None when no answer came back
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_estimated: bool = False  # True when the server gave no usage
    cached: bool = False
    retries: int = 0
    requests: int = 0  # HTTP requests (or local generations) this completion cost
    error: str | None = None  # why there is no text
    guided: bool = False  # the server constrained this answer (vLLM guided decoding)


class EndpointError(RuntimeError):
    """A configuration error the run cannot recover from (auth, unknown model/URL)."""


# --------------------------------------------------------------------------- budget


class Budget:
    """Request-count and wall-clock limits shared by all workers of one run."""

    def __init__(self, max_requests: int | None = None, max_seconds: float | None = None):
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.start = time.monotonic()
        self.sent = 0
        self._lock = threading.Lock()

    def remaining_seconds(self) -> float | None:
        if self.max_seconds is None:
            return None
        return self.max_seconds - (time.monotonic() - self.start)

    def acquire(self, n: int = 1) -> str | None:
        """Reserve ``n`` requests; returns the reason when the budget refuses."""
        with self._lock:
            remaining = self.remaining_seconds()
            if remaining is not None and remaining <= 0:
                return f"budget exhausted: max_seconds={self.max_seconds}"
            if self.max_requests is not None and self.sent + n > self.max_requests:
                return f"budget exhausted: max_requests={self.max_requests}"
            self.sent += n
            return None


# --------------------------------------------------------------------------- cache


class ResponseCache:
    """On-disk response cache: ``<dir>/<hash[:2]>/<hash>.json``, atomic writes."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    @staticmethod
    def key(identity: dict, messages: Messages, params: dict) -> str:
        """Hash of who answers (backend, endpoint URL, model, its revision) and what."""
        blob = json.dumps(
            {"identity": identity, "messages": messages, "params": params},
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        path = self._path(key)
        if not path.exists():
            return None
        try:
            entry = read_json(path)
        except (OSError, ValueError):  # unreadable entry: treat as a miss, it gets rewritten
            log.warning("ignoring unreadable cache entry %s", path)
            return None
        return entry if isinstance(entry, dict) and "text" in entry else None

    def put(self, key: str, entry: dict) -> None:
        write_json(self._path(key), entry)


# --------------------------------------------------------------------------- token counting


def estimate_tokens(text: str) -> int:
    """Rough token count (~4 characters per token for English BPE vocabularies)."""
    return max(1, (len(text) + 3) // 4) if text else 0


def estimate_prompt_tokens(messages: Messages) -> int:
    # ~4 tokens of chat-template overhead per turn
    return sum(estimate_tokens(m["content"]) + 4 for m in messages)


# --------------------------------------------------------------------------- OpenAI backend


def _retry_after(response: Any) -> float | None:
    """Seconds the server asks us to wait (``retry-after-ms`` / ``retry-after``)."""
    headers = getattr(response, "headers", None) or {}
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:  # an HTTP date: fall back to our own backoff
            return None
    return None


class OpenAIBackend:
    """Chat completions over any OpenAI-compatible endpoint with the official client.

    A bounded thread pool sends ``concurrency`` requests at a time; 429, 5xx,
    timeouts and connection errors are retried with exponential backoff (or the
    server's Retry-After), at most ``max_retries`` times, within the run budget.
    """

    name = "openai"

    def __init__(
        self,
        endpoint: str,
        model: str,
        api_key: str | None,
        timeout: float = 30.0,
        max_retries: int = 4,
        retry_backoff: float = 1.0,
        concurrency: int = 4,
        temperature: float = 0.0,
        seed: int = 0,
        count_tokens: Callable[[Messages], int] | None = None,
        revision: str = "",
    ):
        import openai

        from ecomlm.redact import register_secret

        register_secret(api_key)  # masked in every error text that reaches a record
        self.openai = openai
        self.endpoint, self.model, self.revision = endpoint, model, revision
        self.client = openai.OpenAI(
            base_url=endpoint, api_key=api_key or "not-set", max_retries=0, timeout=timeout
        )
        self.timeout, self.max_retries, self.retry_backoff = timeout, max_retries, retry_backoff
        self.concurrency = max(1, concurrency)
        self.temperature, self.seed = temperature, seed
        self.count_tokens = count_tokens or estimate_prompt_tokens
        # None: not tried yet; False: the server rejected the guided-decoding fields once,
        # so later requests go without them (and answers are parsed as they come)
        self.guided_accepted: bool | None = None

    def identity(self) -> dict[str, str]:
        """What a cached answer depends on: the server, not just the model's name."""
        return {
            "backend": self.name,
            "endpoint": self.endpoint.rstrip("/"),
            "model": self.model,
            "revision": self.revision,
        }

    def params(self, max_new_tokens: int) -> dict:
        params: dict[str, Any] = {"temperature": self.temperature, "max_tokens": max_new_tokens}
        if self.temperature > 0:  # the seed only matters when sampling
            params["seed"] = self.seed
        return params

    def _once(
        self, messages: Messages, max_new_tokens: int, timeout: float, guide: dict | None = None
    ) -> Completion:
        extra = {"extra_body": guide} if guide else {}
        resp = self.client.chat.completions.create(
            model=self.model,
            messages=messages,
            timeout=timeout,
            **self.params(max_new_tokens),
            **extra,
        )
        choices = getattr(resp, "choices", None) or []
        text = (choices[0].message.content or "") if choices and choices[0].message else ""
        usage = getattr(resp, "usage", None)
        if usage is not None and getattr(usage, "prompt_tokens", None) is not None:
            return Completion(
                text=text,
                prompt_tokens=int(usage.prompt_tokens),
                completion_tokens=int(usage.completion_tokens or 0),
            )
        return Completion(
            text=text,
            prompt_tokens=self.count_tokens(messages),
            completion_tokens=estimate_tokens(text),
            tokens_estimated=True,
        )

    def complete_one(
        self, messages: Messages, max_new_tokens: int, budget: Budget, guide: dict | None = None
    ) -> Completion:
        """One answer with retries; ``guide`` holds the server's guided-decoding fields
        (vLLM: ``guided_choice`` / ``guided_regex``), dropped for good if it rejects them."""
        openai = self.openai
        retries = requests = 0
        while True:
            guided = bool(guide) and self.guided_accepted is not False
            refused = budget.acquire()
            if refused:
                return Completion(error=refused, retries=retries, requests=requests)
            requests += 1
            remaining = budget.remaining_seconds()
            timeout = self.timeout if remaining is None else max(0.05, min(self.timeout, remaining))
            wait: float | None = None
            try:
                done = self._once(messages, max_new_tokens, timeout, guide if guided else None)
                done.retries, done.requests, done.guided = retries, requests, guided
                if guided:
                    self.guided_accepted = True
                return done
            except openai.RateLimitError as e:
                error, wait = "http 429 (rate limited)", _retry_after(e.response)
            except openai.APIStatusError as e:
                status = e.status_code
                if status in (401, 403, 404):
                    raise EndpointError(
                        f"{self.endpoint} answered HTTP {status} for model {self.model!r}: "
                        f"{redact(e.message)}. Check the endpoint URL, the model name and "
                        "the API key environment variable."
                    ) from e
                if guided and status in (400, 422) and not self.guided_accepted:
                    self.guided_accepted = False  # no guided decoding here: parse instead
                    continue
                if status not in (408, 409) and status < 500:  # e.g. 400: prompt too long
                    return Completion(
                        error=redact(f"http {status}: {e.message}")[:300],
                        retries=retries,
                        requests=requests,
                    )
                error, wait = f"http {status}", _retry_after(e.response)
            except openai.APITimeoutError:
                error = f"timeout after {timeout:.1f}s"
            except openai.APIConnectionError as e:
                error = redact(f"connection error: {e}")[:300]
            except openai.OpenAIError as e:  # malformed response body and the like
                return Completion(
                    error=redact(f"{type(e).__name__}: {e}")[:300],
                    retries=retries,
                    requests=requests,
                )
            if retries >= self.max_retries:
                return Completion(
                    error=f"{error}; gave up after {retries} retries",
                    retries=retries,
                    requests=requests,
                )
            if wait is None:
                wait = self.retry_backoff * 2**retries * random.uniform(1.0, 1.25)
            wait = min(wait, MAX_RETRY_WAIT)
            remaining = budget.remaining_seconds()
            if remaining is not None and wait >= remaining:
                return Completion(
                    error=f"{error}; budget exhausted: max_seconds={budget.max_seconds}",
                    retries=retries,
                    requests=requests,
                )
            time.sleep(wait)
            retries += 1

    def complete(
        self,
        requests: Sequence[Messages],
        max_new_tokens: int,
        budget: Budget,
        on_done: Callable[[int, Completion], None] | None = None,
        guides: Sequence[dict | None] | None = None,
    ) -> list[Completion]:
        results: list[Completion | None] = [None] * len(requests)
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="icl")
        guides = guides or [None] * len(requests)
        try:
            futures = {
                pool.submit(self.complete_one, messages, max_new_tokens, budget, guides[i]): i
                for i, messages in enumerate(requests)
            }
            for future in _progress(as_completed(futures), len(futures)):
                i = futures[future]
                results[i] = future.result()  # re-raises EndpointError
                if on_done is not None:
                    on_done(i, results[i])
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return results  # type: ignore[return-value]


def _admitted(budget: Budget, indices: Sequence[int], results: list[Completion]) -> list[int]:
    """The requests the budget lets through; each refused one gets a Completion saying why."""
    allowed = []
    for i in indices:
        refused = budget.acquire()
        if refused:
            results[i] = Completion(error=refused)
        else:
            allowed.append(i)
    return allowed


def _progress(iterable: Any, total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc="icl", unit="req", disable=None, leave=False)


# --------------------------------------------------------------------------- local backend


class LocalBackend:
    """Greedy batched generation with a transformers model in this process."""

    name = "local"

    def __init__(
        self,
        model: str = "smollm2",
        batch_size: int = 8,
        dtype: str = "float32",
        device: str = "cpu",
    ):
        from ecomlm.methods.llm.causal_lm import load_llm

        self.model_name = model
        self.model, self.tokenizer = load_llm(model, dtype=dtype, device=device)
        self.batch_size = max(1, batch_size)

    def context_limit(self) -> int:
        config_limit = getattr(self.model.config, "max_position_embeddings", None) or 2048
        tok_limit = getattr(self.tokenizer, "model_max_length", None) or config_limit
        return int(min(config_limit, tok_limit))

    def prompt(self, messages: Messages) -> str:
        from ecomlm.methods.llm.causal_lm import prompt_text

        return prompt_text(self.tokenizer, messages)

    def count_tokens(self, messages: Messages) -> int:
        return len(self.tokenizer(self.prompt(messages), add_special_tokens=False).input_ids)

    def identity(self) -> dict[str, str]:
        """The model and a fingerprint of its weight files (a changed revision misses)."""
        folder = Path(getattr(self.model, "name_or_path", "") or self.model_name)
        stamps = []
        if folder.is_dir():
            stamps = [f"{f.name}:{f.stat().st_size}:{int(f.stat().st_mtime)}"
                      for f in sorted(folder.iterdir()) if f.is_file()]  # fmt: skip
        revision = hashlib.sha256("|".join(stamps).encode()).hexdigest()[:16]
        return {"backend": self.name, "model": self.model_name, "path": str(folder),
                "revision": revision}  # fmt: skip

    def params(self, max_new_tokens: int) -> dict:
        return {"temperature": 0.0, "max_tokens": max_new_tokens}

    def complete(
        self,
        requests: Sequence[Messages],
        max_new_tokens: int,
        budget: Budget,
        on_done: Callable[[int, Completion], None] | None = None,
        answer_regexes: Sequence[str | None] | None = None,
    ) -> list[Completion]:
        from ecomlm.methods.llm.causal_lm import generate

        results: list[Completion] = [Completion() for _ in requests]
        prompts = [self.prompt(m) for m in requests]
        # Shortest prompts first so each batch carries little padding (as llm.generate does).
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        limit = self.context_limit() - max_new_tokens
        for start in _progress(
            range(0, len(order), self.batch_size), -(-len(order) // self.batch_size)
        ):
            batch = _admitted(budget, order[start : start + self.batch_size], results)
            if not batch:
                continue
            texts = generate(
                self.model,
                self.tokenizer,
                [prompts[i] for i in batch],
                max_new_tokens=max_new_tokens,
                batch_size=len(batch),
                max_prompt_tokens=max(1, limit),
                answer_regexes=[answer_regexes[i] for i in batch] if answer_regexes else None,
            )
            for i, text in zip(batch, texts, strict=True):
                n_prompt = len(self.tokenizer(prompts[i], add_special_tokens=False).input_ids)
                n_out = len(self.tokenizer(text, add_special_tokens=False).input_ids)
                results[i] = Completion(
                    text=text,
                    prompt_tokens=min(n_prompt, limit),
                    completion_tokens=n_out,
                    requests=1,
                )
                if on_done is not None:
                    on_done(i, results[i])
        return results


class EngineBackend(LocalBackend):
    """The local backend on llama.cpp (``ecomlm.methods.llm.engine``): the bundled GGUF
    weights as shipped, prompts tokenized by the model's Hugging Face tokenizer (the same
    ids as the transformers path), and answers constrained by the task's grammar."""

    engine_name = "llama.cpp"

    def __init__(self, model: str = "smollm2", batch_size: int = 8, *_: Any) -> None:
        from transformers import AutoTokenizer

        from ecomlm.methods.llm.engine import LlamaCppEngine
        from ecomlm.models import llm_path

        self.model_name, self.batch_size = model, batch_size
        self.engine = LlamaCppEngine(model)
        self.tokenizer = AutoTokenizer.from_pretrained(llm_path(model))
        self.model = None

    def context_limit(self) -> int:
        tok_limit = getattr(self.tokenizer, "model_max_length", None) or self.engine.context_limit
        return int(min(self.engine.context_limit, tok_limit))

    def identity(self) -> dict[str, str]:
        stat = self.engine.path.stat()
        revision = f"{self.engine.path.name}:{stat.st_size}:{int(stat.st_mtime)}"
        return {"backend": self.name, "engine": self.engine_name, "model": self.model_name,
                "revision": revision}  # fmt: skip

    def complete(
        self,
        requests: Sequence[Messages],
        max_new_tokens: int,
        budget: Budget,
        on_done: Callable[[int, Completion], None] | None = None,
        grammars: Sequence[str | None] | None = None,
    ) -> list[Completion]:
        from ecomlm.methods.llm.causal_lm import encode

        results: list[Completion] = [Completion() for _ in requests]
        limit = max(1, self.context_limit() - max_new_tokens)
        for i in _progress(range(len(requests)), len(requests)):
            if not _admitted(budget, [i], results):
                continue
            ids = encode(self.tokenizer, self.prompt(requests[i]))[-limit:]
            grammar = grammars[i] if grammars else None
            text, n_out = self.engine.complete(ids, max_new_tokens, grammar)
            results[i] = Completion(text=text, prompt_tokens=len(ids),
                                    completion_tokens=n_out, requests=1)  # fmt: skip
            if on_done is not None:
                on_done(i, results[i])
        return results
