"""The Hugging Face tokenizer of a SentencePiece-BPE GGUF model (Gemma), built right.

transformers (4.57) converts a Gemma GGUF's vocabulary into a *Unigram* model and reads
the GGUF scores as log-probabilities. In a SentencePiece-BPE vocabulary those scores are
merge priorities (minus the merge rank: ``st`` -46, ``taste`` -126,252), so Unigram
prefers the shortest pieces and splits text almost into characters: "tastefully simple
spinach" became 19 tokens (``ta st ef ul ly ▁s im ple ...``) where llama.cpp, reading
the same file, makes 8. A model fine-tuned or prompted through that tokenizer sees text
it was never trained on.

Here the vocabulary becomes what it is, a BPE: each normal piece's splits into two
pieces are merges, ranked by the merged piece's score (SentencePiece's rule: merge the
adjacent pair whose result scores highest), with byte fallback, spaces as ``▁``, control
tokens special and user-defined ones (newline runs) matched whole, as llama.cpp does.
Its ids equal llama.cpp's (tests/test_models.py: llama.cpp's ids as golden values;
tests/test_engine.py: live, on task prompts and real ESCI text).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

# llama.cpp token types (``llama_token_type``)
NORMAL, CONTROL, USER_DEFINED = 1, 3, 4


class GgufVocab(NamedTuple):
    model: str  # tokenizer.ggml.model: "llama" = SentencePiece, "gpt2" = byte-level BPE
    tokens: list[str]
    scores: list[float]
    types: list[int]
    has_merges: bool


def gguf_vocab(path: Path) -> GgufVocab:
    """The tokenizer part of a GGUF's metadata (one parse of the file)."""
    from ecomlm.io import gguf_metadata

    field = gguf_metadata(path)
    return GgufVocab(
        field("tokenizer.ggml.model") or "",
        list(field("tokenizer.ggml.tokens") or []),
        list(field("tokenizer.ggml.scores") or []),
        list(field("tokenizer.ggml.token_type") or []),
        field("tokenizer.ggml.merges") is not None,
    )


def is_sentencepiece_bpe(vocab: GgufVocab) -> bool:
    """A SentencePiece-BPE vocabulary (``llama`` model) that ships no merges."""
    return vocab.model == "llama" and not vocab.has_merges


def bpe_merges(tokens: list[str], scores: list[float], types: list[int]) -> list[tuple[str, str]]:
    """Every split of a normal piece into two pieces, highest-scoring result first."""
    vocab = {t: i for i, t in enumerate(tokens)}
    ranked = sorted((i for i, k in enumerate(types) if k == NORMAL), key=lambda i: -scores[i])
    merges = []
    for i in ranked:
        piece = tokens[i]
        merges += [(piece[:k], piece[k:]) for k in range(1, len(piece))
                   if piece[:k] in vocab and piece[k:] in vocab]  # fmt: skip
    return merges


def sentencepiece_bpe_backend(vocab: GgufVocab) -> Any:
    """A ``tokenizers.Tokenizer`` for a GGUF's SentencePiece-BPE vocabulary."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers
    from tokenizers.models import BPE

    tokens, scores, types = vocab.tokens, vocab.scores, vocab.types
    ids = {t: i for i, t in enumerate(tokens)}
    unk = "<unk>" if "<unk>" in ids else None
    backend = Tokenizer(BPE(ids, bpe_merges(tokens, scores, types), unk_token=unk,
                            fuse_unk=True, byte_fallback=True))  # fmt: skip
    backend.normalizer = normalizers.Replace(" ", "▁")
    backend.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    kinds = list(zip(tokens, types, strict=True))
    backend.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t, k in kinds if k == CONTROL]
    )
    backend.add_tokens(
        [AddedToken(t, special=False, normalized=False) for t, k in kinds if k == USER_DEFINED]
    )
    return backend


def repaired_tokenizer(loaded: Any, vocab: GgufVocab) -> Any:
    """``loaded`` (transformers' tokenizer of the GGUF ``vocab`` came from) on the BPE
    backend, with its special tokens, chat template and BOS/EOS behaviour kept."""
    fixed = type(loaded)(
        tokenizer_object=sentencepiece_bpe_backend(vocab),
        bos_token=loaded.bos_token, eos_token=loaded.eos_token, unk_token=loaded.unk_token,
        pad_token=loaded.pad_token, add_bos_token=getattr(loaded, "add_bos_token", True),
        add_eos_token=getattr(loaded, "add_eos_token", False),
    )  # fmt: skip
    fixed.chat_template = loaded.chat_template
    fixed.model_max_length = loaded.model_max_length
    return fixed
