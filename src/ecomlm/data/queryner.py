"""QueryNER -> ``NerExample``: CoNLL (``token<TAB>label``, blank line between queries)
and BIO JSONL (``{"tokens": [...], "tags": [...]}``)."""

from __future__ import annotations

from pathlib import Path

from ecomlm.data._common import find_split_file
from ecomlm.data.splits import fill_missing_splits, group_split
from ecomlm.io import read_jsonl_lines
from ecomlm.tasks.queryner import ENTITY_TYPES, NerExample

VALID_TAGS = frozenset(["O"] + [f"{p}-{t}" for t in ENTITY_TYPES for p in "BI"])


def check_tag(tag: str, where: str) -> str:
    if tag not in VALID_TAGS:
        raise ValueError(
            f"{where}: unknown BIO label {tag!r}; expected O or B-/I- with one of "
            f"{', '.join(ENTITY_TYPES)}"
        )
    return tag


def read_conll(path: str | Path) -> list[NerExample]:
    """One query per block of ``token<TAB>label`` lines; ids are ``<file stem>-<n>``."""
    path = Path(path)
    out: list[NerExample] = []
    tokens: list[str] = []
    tags: list[str] = []

    def flush() -> None:
        if tokens:
            out.append(NerExample(list(tokens), list(tags), id=f"{path.stem}-{len(out)}"))
            tokens.clear()
            tags.clear()

    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                flush()
                continue
            if line.startswith("-DOCSTART-"):
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                raise ValueError(
                    f"{path}:{lineno}: expected 'token<TAB>label', got {len(parts)} field(s)"
                )
            token, tag = parts[0].strip(), parts[1].strip()
            if not token:
                raise ValueError(f"{path}:{lineno}: empty token")
            tokens.append(token)
            tags.append(check_tag(tag, f"{path}:{lineno}: label"))
    flush()
    return out


def read_bio_jsonl(path: str | Path) -> list[NerExample]:
    """One ``{"tokens": [...], "tags": [...]}`` object per line (``ner_tags`` also accepted)."""
    path = Path(path)
    out: list[NerExample] = []
    for where, row in read_jsonl_lines(path):
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object")
        out.append(example_from_bio(row, where, default_id=f"{path.stem}-{len(out)}"))
    return out


def example_from_bio(row: dict, where: str, default_id: str = "") -> NerExample:
    tokens = row.get("tokens")
    tags = row.get("tags", row.get("ner_tags"))
    if not isinstance(tokens, list):
        raise ValueError(f"{where}: field 'tokens' must be a list of strings")
    if not tokens:
        raise ValueError(f"{where}: empty query (field 'tokens' is empty)")
    if not isinstance(tags, list):
        raise ValueError(f"{where}: field 'tags' must be a list of BIO labels")
    if len(tags) != len(tokens):
        raise ValueError(f"{where}: {len(tokens)} tokens but {len(tags)} tags")
    for i, tok in enumerate(tokens):
        if not isinstance(tok, str) or not tok.strip():
            raise ValueError(f"{where}: field 'tokens'[{i}] is empty or not a string")
    for i, tag in enumerate(tags):
        check_tag(str(tag), f"{where}: field 'tags'[{i}]")
    return NerExample(
        tokens=[t.strip() for t in tokens],
        tags=[str(t) for t in tags],
        id=str(row.get("id", default_id)),
    )


def read_queryner_file(path: str | Path) -> list[NerExample]:
    path = Path(path)
    if path.suffix.lower() in (".jsonl", ".json"):
        return read_bio_jsonl(path)
    return read_conll(path)


def _query_key(ex: NerExample) -> str:
    return " ".join(ex.tokens).lower()


def load_queryner_splits(path: str | Path, seed: int = 0) -> dict[str, list[NerExample]]:
    """A folder with train/dev/test files (``.txt``/``.conll``/``.jsonl``) or one file.

    Missing dev/test splits are carved from train (10% each); a single file is split
    80/10/10; always by query text, so a query never appears in two splits.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found")
    if path.is_file():
        return group_split(read_queryner_file(path), _query_key, (0.8, 0.1, 0.1), seed)
    suffixes = (".txt", ".conll", ".bio", ".jsonl")
    files = {s: find_split_file(path, s, suffixes) for s in ("train", "dev", "test")}
    if files["train"] is None:
        raise FileNotFoundError(f"{path}: no train{{.txt,.conll,.jsonl}} file")
    out = {s: read_queryner_file(f) if f else [] for s, f in files.items()}
    return fill_missing_splits(out, _query_key, seed)
