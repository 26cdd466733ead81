"""MLM-head training on a tiny BERT: it learns, saves faithfully, resumes exactly, obeys its
sentence budget and gives the same output on every run; the fill-mask metric is right on a
rigged model with a known answer."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM

from salt.mlm_head import (
    EXCLUDED_BIAS,
    RUN_TIMES,
    CentredMaskedLM,
    MLMHeadConfig,
    MLMHeadTrainer,
    bottom_states,
    fill_mask_accuracy,
    mean_difference_basis,
    run_layers,
    train_mlm_head,
)
from salt.models import load_tokenizer
from salt.runtime import decide

FP32 = decide("fp32", device="cpu")  # the tests compare exact weights: no autocast


@pytest.fixture(scope="module")
def texts(data_dir) -> dict[str, list[str]]:
    """Two languages' unlabeled sentences, few enough for second-scale runs."""
    from salt.data import load_local

    out = {}
    for lang in ("en", "fr"):
        rows = load_local("xnli", "dev", lang, data_dir)[:60]
        out[lang] = list(dict.fromkeys(t for ex in rows for t in (ex.text_a, ex.text_b)))
    return out


def _cfg(**kw) -> MLMHeadConfig:
    base = dict(max_steps=10, progress=False, eval_sentences=10,
                head_batch_size=64, batch_size=8, checkpoint_every=0, log_every=1,
                held_out_fraction=0.1)
    return MLMHeadConfig(**{**base, **kw})


def _batch(tok, sentences, mask_every: int = 4):
    """Padded ids (B, T), attention (B, T) and a mask of every ``mask_every``-th real token."""
    enc = tok(sentences, padding=True, truncation=True, max_length=32, return_tensors="pt")
    ids, att = enc["input_ids"], enc["attention_mask"]
    pos = torch.arange(ids.shape[1])[None, :].expand_as(ids)
    select = (pos % mask_every == 1) & (att == 1) & (ids != tok.sep_token_id)
    return ids.masked_fill(select, tok.mask_token_id), att, select


def test_split_forward_equals_base_model(tiny_model, texts):
    """Cached bottom layers + re-run top layers reproduce ``base_model`` (padding included)."""
    model = AutoModelForMaskedLM.from_pretrained(tiny_model).eval()
    tok = load_tokenizer(tiny_model)
    ids, att, _ = _batch(tok, texts["en"][:5] + texts["fr"][:3])
    with torch.no_grad():
        ref = model.base_model(input_ids=ids, attention_mask=att).last_hidden_state
        layers = model.bert.encoder.layer
        for k in range(len(layers) + 1):
            low = bottom_states(model.bert, ids, att, len(layers) - k)
            out = run_layers(model.bert, layers[len(layers) - k:], low, att)
            real = att.bool()
            torch.testing.assert_close(out[real], ref[real], atol=1e-5, rtol=1e-5)


def test_projection_equalises_language_means():
    gen = torch.Generator().manual_seed(0)
    means = torch.randn(4, 16, generator=gen)
    q = mean_difference_basis(means)  # (16, 3)
    assert q.shape == (16, 3)
    projected = means - (means @ q) @ q.T
    torch.testing.assert_close(projected, projected[:1].expand_as(projected), atol=1e-5,
                               rtol=0)


def test_head_trains_loss_drops(tiny_model, texts, tmp_path):
    """Head-only training fits a small static cache: the loss falls clearly below its
    starting value (a log-unigram prior) within 150 steps."""
    small = {lang: v[:40] for lang, v in texts.items()}
    report = train_mlm_head(tiny_model, small, tmp_path / "out",
                            _cfg(max_steps=150, lr=1e-2, centre="none", log_every=10),
                            runtime=FP32)
    curve = [loss for _, loss in report["loss_curve"]]
    assert report["steps"] == 150 and report["stopped_by"] == "max_steps"
    assert curve[-1] < curve[0] - 0.5, curve
    assert set(report["fill_mask"]["per_language"]) == {"en", "fr"}
    assert (tmp_path / "out" / "mlm_head.json").is_file()


@pytest.mark.parametrize(("centre", "top"), [("project", 1), ("mean", 0), ("none", 2)])
def test_saved_folder_matches_training_head(tiny_model, texts, tmp_path, centre, top):
    """The reloaded folder computes what was trained: same logits as the in-memory export,
    the training-time head (centring + kept decoder) at kept ids, and excluded ids never win."""
    trainer = MLMHeadTrainer(tiny_model, texts, tmp_path / "out",
                             _cfg(centre=centre, train_top_layers=top, max_steps=8),
                             runtime=FP32)
    report = trainer.run()
    assert report["centring"]["mode"] == centre
    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path / "out").eval()
    exported = trainer.exported
    tok = load_tokenizer(tmp_path / "out")
    kept = trainer.kept
    for li, lang in enumerate(trainer.languages):
        ids, att, select = _batch(tok, texts[lang][:6])
        with torch.no_grad():
            full = loaded(input_ids=ids, attention_mask=att).logits  # (B, T, V)
            ref = exported(input_ids=ids, attention_mask=att).logits
            torch.testing.assert_close(full, ref, atol=1e-5, rtol=1e-5)
            rows = loaded.base_model(input_ids=ids, attention_mask=att).last_hidden_state[select]
            lang_idx = torch.full((len(rows),), li)
            trained = trainer.head_logits(rows, lang_idx)  # (M, K)
            if centre == "mean" and lang != "en":
                wrapped = CentredMaskedLM.from_pretrained(tmp_path / "out")
                served = wrapped.masked_logits(ids, att, select, lang)
            else:
                served = full[select]
        torch.testing.assert_close(served[:, kept], trained, atol=1e-4, rtol=1e-4)
        # excluded ids: very negative bias, never the argmax anywhere (masked or not)
        excluded = torch.ones(full.shape[-1], dtype=torch.bool)
        excluded[kept] = False
        assert (loaded.cls.predictions.bias[excluded] == EXCLUDED_BIAS).all()
        assert not excluded[full.argmax(-1)[att.bool()]].any()
    assert not set(kept.tolist()) & set(tok.all_special_ids)


def test_fill_mask_accuracy_known_answer(tiny_model):
    """A model rigged to score ids by a fixed bias: sentences made of one repeated token get
    top-1 = 1 when that token has the highest bias, top-5 depending on its rank."""
    tok = load_tokenizer(tiny_model)
    vocab = tok.get_vocab()
    words = [w for w in ("the", "de", "a", "la", "and", "le", "of", "in") if w in vocab]
    assert len(words) >= 3, "the tiny vocabulary lacks common words"
    x, y, z = (vocab[w] for w in words[:3])
    model = AutoModelForMaskedLM.from_pretrained(tiny_model).eval()
    with torch.no_grad():
        model.cls.predictions.transform.LayerNorm.weight.zero_()  # transform output = its
        model.cls.predictions.transform.LayerNorm.bias.zero_()  # bias = 0: logits = bias
        bias = torch.zeros_like(model.cls.predictions.bias)
        bias[x] = 100.0
        bias[torch.tensor([i for i in range(5, 9) if i not in (x, y, z)][:3])] = 90.0
        bias[y] = 80.0  # 5th at worst: in the top 5
        bias[z] = -50.0  # far outside the top 5
        model.cls.predictions.bias.copy_(bias)
    texts = {
        "xx": [" ".join([words[0]] * n) for n in (7, 10, 13)],
        "yy": [" ".join([words[1]] * n) for n in (7, 20)],
        "zz": [" ".join([words[2]] * 9)],
    }
    res = fill_mask_accuracy(model, tok, texts, mask_prob=0.15, eval_sentences=10)
    per = res["per_language"]
    assert per["xx"]["masked"] == 1 + 2 + 2  # round(0.15 n), at least one, per sentence
    assert per["yy"]["masked"] == 1 + 3
    assert (per["xx"]["top1"], per["xx"]["top5"]) == (1.0, 1.0)
    assert (per["yy"]["top1"], per["yy"]["top5"]) == (0.0, 1.0)
    assert (per["zz"]["top1"], per["zz"]["top5"]) == (0.0, 0.0)
    assert res["mean_top1"] == pytest.approx(1 / 3)


def _stop_at(step_to_fail: int):
    def hook(step: int, loss: float) -> None:
        if step == step_to_fail:
            raise KeyboardInterrupt(f"simulated interruption at step {step}")
    return hook


def test_resume_after_interruption_matches_uninterrupted(tiny_model, texts, tmp_path):
    """Interrupted at step 7 (last checkpoint: 6) and restarted, the run ends with the same
    head and top layer as an uninterrupted run of the same 12 steps."""
    cfg = _cfg(max_steps=12, checkpoint_every=3, train_top_layers=1, centre="project")
    full = train_mlm_head(tiny_model, texts, tmp_path / "a", cfg, runtime=FP32)
    with pytest.raises(KeyboardInterrupt):
        train_mlm_head(tiny_model, texts, tmp_path / "b", cfg, on_step=_stop_at(7),
                       runtime=FP32)
    resumed = train_mlm_head(tiny_model, texts, tmp_path / "b", cfg, runtime=FP32)
    assert resumed["resumed_from_step"] == 6 and resumed["steps"] == full["steps"] == 12
    a = load_file(tmp_path / "a" / "model.safetensors")
    b = load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0, msg=key)
    assert [x for _, x in resumed["loss_curve"]] == pytest.approx(
        [x for _, x in full["loss_curve"]])


@pytest.mark.parametrize("objective", ["masked", "prototype"])
def test_sentence_budget_cuts_short_and_is_recorded(tiny_model, texts, tmp_path, objective):
    """A sentence budget below the available sentences encodes exactly that many, balanced
    across languages, and says so; a budget above them encodes all and says it did not cut."""
    with pytest.warns(UserWarning, match="cut the training text short: 21 of"):
        small = train_mlm_head(tiny_model, texts, tmp_path / "small",
                               _cfg(objective=objective, encode_sentences=21), runtime=FP32)
    available = small["available_sentences"]
    assert available > 21
    assert small["budget"] == {"stage": "mlm", "kind": "sentences", "limit": 21, "used": 21,
                               "cut_short": True}
    assert sum(small["encoded_sentences"].values()) == 21
    assert sorted(small["encoded_sentences"].values()) == [10, 11]  # round-robin
    assert small["encoded_all"] is False
    big = train_mlm_head(tiny_model, texts, tmp_path / "big",
                         _cfg(objective=objective, encode_sentences=10**6), runtime=FP32)
    assert big["budget"]["used"] == available and big["budget"]["cut_short"] is False
    assert big["encoded_all"] is True


def test_same_budget_same_output(tiny_model, texts, tmp_path):
    """Two runs with the same inputs and budget give identical head weights and an identical
    report apart from the run times: nothing depends on the machine's speed."""
    cfg = _cfg(max_steps=6, train_top_layers=1, encode_sentences=40)
    reports = []
    for name in ("a", "b"):
        with pytest.warns(UserWarning, match="cut the training text short"):
            report = train_mlm_head(tiny_model, texts, tmp_path / name, cfg, runtime=FP32)
        reports.append({k: v for k, v in report.items() if k not in RUN_TIMES})
    assert reports[0] == reports[1]
    a = load_file(tmp_path / "a" / "model.safetensors")
    b = load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_prototype_head_reads_unmasked_tokens(tiny_model, texts, tmp_path):
    """The prototype objective trains nothing, saves an untied decoder that reloads exactly,
    and maps an unmasked training token's state back to itself most of the time."""
    trainer = MLMHeadTrainer(tiny_model, texts, tmp_path / "out",
                             _cfg(objective="prototype", centre="project", eval_sentences=20),
                             runtime=FP32)
    report = trainer.run()
    assert report["steps"] == 0 and report["input"] == "unmasked"
    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path / "out").eval()
    assert not loaded.config.tie_word_embeddings
    tok = load_tokenizer(tmp_path / "out")
    enc = tok(texts["fr"][:8], padding=True, return_tensors="pt")
    with torch.no_grad():
        got = loaded(**enc).logits
        want = trainer.exported(**enc).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    real = enc["attention_mask"].bool() & ~torch.isin(enc["input_ids"],
                                                      torch.tensor(tok.all_special_ids))
    recovered = (got.argmax(-1) == enc["input_ids"])[real].float().mean()
    assert recovered > 0.5
    assert report["fill_mask"]["protocol"]["inputs"].startswith("unmasked")
