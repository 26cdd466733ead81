"""Model sources share one interface; the hf: path is exercised on a save_pretrained folder."""

from __future__ import annotations

import pytest
import torch

from salt.models import ModelSourceError, load_bundle, resolve


def test_hf_local_folder_round_trip(tiny_model, tmp_path):
    bundle = load_bundle("tiny", tiny_model)
    mlm = bundle.masked_lm()
    out = tmp_path / "saved"
    mlm.save_pretrained(out)
    bundle.tokenizer.save_pretrained(out)
    path = resolve(f"hf:{out}")
    again = load_bundle(f"hf:{out}", path)
    enc = again.tokenizer(["Le chat dort."], ["The cat sleeps."], return_tensors="pt")
    with torch.inference_mode():
        a = mlm.eval()(**enc).logits
        b = again.masked_lm().eval()(**enc).logits
    assert torch.equal(a, b)
    assert a.shape[-1] == len(again.tokenizer)


def test_same_interface_for_every_source(tiny_model):
    bundle = load_bundle("tiny", tiny_model)
    clf = bundle.classifier(3)
    enc = bundle.tokenizer(["a b c"], ["d e"], return_tensors="pt")
    emb = clf.get_input_embeddings()(enc["input_ids"])  # (1, T, H)
    out = clf(inputs_embeds=emb, attention_mask=enc["attention_mask"])
    assert out.logits.shape == (1, 3)
    assert emb.shape[-1] == clf.config.hidden_size


def test_tiny_vocab_comes_from_text(tiny_model):
    tok = load_bundle("tiny", tiny_model).tokenizer
    ids = tok("the", add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids


@pytest.mark.parametrize(
    ("spec", "message"),
    [("gpt:x", "unknown model source"), ("hf:", "needs a hub id"),
     ("tiny", "needs texts"), ("hf:no-such-org/no-such-model", "HF_HUB_OFFLINE")],
)
def test_bad_sources_are_explained(spec, message):
    with pytest.raises(ModelSourceError, match=message):
        resolve(spec)


def test_local_folder_without_config(tmp_path):
    with pytest.raises(ModelSourceError, match=r"no config\.json"):
        resolve(f"hf:{tmp_path}")


def test_tiny_is_deterministic_across_processes(tmp_path, data_dir):
    """Two processes building from the same texts get byte-identical vocabularies and weights,
    and capitalisation is kept (the vocabulary is cased)."""
    import subprocess
    import sys

    code = ("import sys; from salt.data import load_local; from salt.models import build_tiny;"
            "rows = load_local('xnli', 'dev', 'de', sys.argv[2])[:100];"
            "build_tiny(sys.argv[1], [r.text_a for r in rows], vocab_size=800)")
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name), str(data_dir)],
                       check=True)
    for f in ("tokenizer.json", "model.safetensors"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    tok = load_bundle("tiny", tmp_path / "a").tokenizer
    assert tok.convert_ids_to_tokens(tok("Und", add_special_tokens=False)["input_ids"]) == ["Und"]


def test_tiny_sizes_and_word_cap(tmp_path):
    """hidden / layers / heads reach the config; ``words`` caps the whole words (after the
    characters), ``vocab_size`` the total; bad sizes are refused with the key named."""
    import json

    from transformers import AutoConfig

    from salt.models import build_tiny

    texts = ["the cat sat on the mat", "a dog and the cat", "le chat et le chien"]
    path = build_tiny(tmp_path / "w", texts, vocab_size=None, words=3, hidden=24, layers=3,
                      heads=4)
    config = AutoConfig.from_pretrained(path)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (24, 3, 4)
    vocab = load_bundle("tiny", path).tokenizer.get_vocab()
    chars = {c for t in texts for c in t if c != " "}
    assert len(vocab) == 5 + 2 * len(chars) + 3
    assert {"the", "cat", "le"} <= set(vocab) and "mat" not in vocab  # most frequent first
    assert json.loads((path / "salt_source.json").read_text())["words"] == 3
    capped = build_tiny(tmp_path / "v", texts, vocab_size=5 + 2 * len(chars) + 1)
    assert len(load_bundle("tiny", capped).tokenizer.get_vocab()) == 5 + 2 * len(chars) + 1
    for bad, key in (({"words": 0}, "words"), ({"heads": 5, "hidden": 24}, "heads")):
        with pytest.raises(ModelSourceError, match=key):
            build_tiny(tmp_path / "bad", texts, **bad)
