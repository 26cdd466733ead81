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
