"""The tiny models every method test builds on load and round-trip text."""

from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer


def test_tiny_llama_chat_template_and_forward(tiny_llama):
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    text = tok.apply_chat_template(
        [{"role": "user", "content": "red shoes"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>assistant\n")
    ids = tok(text, return_tensors="pt").input_ids
    assert tok.decode(ids[0]) == text  # byte-level BPE is lossless
    assert model(ids).logits.shape == (1, ids.shape[1], len(tok))


def test_tiny_bert_encodes(tiny_bert):
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    out = AutoModel.from_pretrained(tiny_bert)(**tok("red shoes", return_tensors="pt"))
    assert out.last_hidden_state.shape[-1] == 32
