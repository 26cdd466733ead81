"""Training loop: resume equivalence, divergence stop, gradients through the mixup, DDP."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from salt.data import load_local, stratified_subset
from salt.encoding import encode_pairs
from salt.mixup import sample_r, step_generator
from salt.models import load_classifier, load_tokenizer
from salt.train import (
    TrainConfig,
    TrainingDiverged,
    collate_pairs,
    items_from_codeswitch,
    items_from_encoded,
    load_trained,
    salt_loss,
    train,
)


@pytest.fixture(scope="module")
def items(tiny_model, data_dir):
    tok = load_tokenizer(tiny_model)
    rows = stratified_subset(load_local("xnli", "dev", "en", data_dir), 40, 0)
    enc = encode_pairs(tok, rows, 48)
    # A deterministic "code-switched" copy: every third token replaced by a fixed id.
    records = [{"uid": e.uid, "cs_input_ids": [t if i % 3 else 7 for i, t in
                                                enumerate(e.input_ids)]} for e in enc]
    return items_from_codeswitch(records, enc), tok.pad_token_id


def _cfg(**kw):
    base = {"system": "salt", "epochs": 1, "batch_size": 8, "checkpoint_every": 2, "lr": 1e-3}
    return TrainConfig(**{**base, **kw})


def test_resume_equals_uninterrupted(tiny_model, items, tmp_path):
    data, pad = items
    full = train(tiny_model, data, tmp_path / "full", _cfg(), 3, pad_id=pad)
    part = train(tiny_model, data, tmp_path / "part", _cfg(), 3, pad_id=pad, stop_after=3)
    assert part == {"interrupted_at": 3}
    assert not (tmp_path / "part" / "model.safetensors").exists()
    resumed = train(tiny_model, data, tmp_path / "part", _cfg(), 3, pad_id=pad)
    assert resumed["resumed_from"] == 2  # the last checkpoint before the interruption
    a = load_file(tmp_path / "full" / "model.safetensors")
    b = load_file(tmp_path / "part" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert full["loss"] == resumed["loss"]


def test_same_seed_same_weights_other_seed_differs(tiny_model, items, tmp_path):
    data, pad = items
    train(tiny_model, data, tmp_path / "a", _cfg(system="baseline"), 3, pad_id=pad)
    train(tiny_model, data, tmp_path / "b", _cfg(system="baseline"), 3, pad_id=pad)
    train(tiny_model, data, tmp_path / "c", _cfg(system="baseline", seed=1), 3, pad_id=pad)
    a, b, c = (load_file(tmp_path / x / "model.safetensors")["classifier.weight"] for x in "abc")
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_nan_loss_stops_with_last_good_checkpoint(tiny_model, items, tmp_path):
    data, pad = items
    # An absurd learning rate blows the weights up after the first steps; the loss turns
    # non-finite and the run stops, keeping the checkpoint of the last finite step.
    cfg = _cfg(lr=1e30, warmup_ratio=0.0, max_grad_norm=0.0, checkpoint_every=1)
    with pytest.raises(TrainingDiverged, match="last good checkpoint") as err:
        train(tiny_model, data, tmp_path / "nan", cfg, 3, pad_id=pad)
    bad_step = int(str(err.value).split(" at step ")[1].split()[0])
    kept = sorted((tmp_path / "nan" / "checkpoints").glob("checkpoint-*"))
    assert [p.name for p in kept] == [f"checkpoint-{bad_step - 1}"]
    assert not (tmp_path / "nan" / "model.safetensors").exists()


def test_gradients_reach_every_trainable_parameter(tiny_model, items):
    data, pad = items
    cfg = _cfg(freeze_word_embeddings=False)
    model = load_classifier(tiny_model, 3)
    batch = collate_pairs(data[:4], pad, step_generator(0, 0))
    r = sample_r(4, batch["input_ids"].shape[1], model.config.hidden_size, cfg.mixup,
                 step_generator(0, 0, 1))
    salt_loss(model, model.get_input_embeddings(), batch, cfg, r).backward()
    no_grad = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not torch.any(p.grad != 0))]
    assert no_grad == []
    word = model.get_input_embeddings().weight.grad
    # both the source ids and the code-switched id 7 receive gradient through the mixture
    assert torch.any(word[7] != 0) and torch.any(word[batch["input_ids"][0, 1]] != 0)


def test_salt_needs_copies_and_alignment():
    from salt.encoding import Encoded

    assert items_from_encoded([]) == []
    enc = [Encoded("u1", [1, 2, 3], None, 0)]
    with pytest.raises(ValueError, match="token-aligned"):
        items_from_codeswitch([{"uid": "u1", "cs_input_ids": [1, 2]}], enc)
    with pytest.raises(ValueError, match="no code-switched copy for training item u1"):
        items_from_codeswitch([], enc)


def test_save_load_round_trip(tiny_model, items, tmp_path):
    data, pad = items
    train(tiny_model, data, tmp_path / "run", _cfg(system="baseline"), 3, pad_id=pad)
    model = load_trained(tiny_model, tmp_path / "run", 3)
    saved = load_file(tmp_path / "run" / "model.safetensors")
    for name, p in model.named_parameters():
        if name in saved:
            assert torch.equal(p.detach(), saved[name]), name
    log = json.loads((tmp_path / "run" / "train.json").read_text())
    assert log["steps"] == 5 and log["selected"] == "last"


def test_checkpoint_of_other_settings_is_not_resumed(tiny_model, items, tmp_path, capsys):
    data, pad = items
    train(tiny_model, data, tmp_path / "run", _cfg(), 3, pad_id=pad, stop_after=3)
    log = train(tiny_model, data, tmp_path / "run", _cfg(lr=5e-4), 3, pad_id=pad)
    assert log["resumed_from"] is None
    assert "made with other settings" in capsys.readouterr().out


def test_length_grouped_batches_cover_every_item_once_and_pad_less():
    from salt.train import _batches

    lengths = [(7 * i) % 61 + 5 for i in range(200)]
    plain = _batches(lengths, 8, seed=3, epoch=1)
    grouped = _batches(lengths, 8, seed=3, epoch=1, group_by_length=5)
    for batches in (plain, grouped):
        assert sorted(i for b in batches for i in b) == list(range(200))
    assert grouped == _batches(lengths, 8, seed=3, epoch=1, group_by_length=5)

    def padded(batches):
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    assert padded(grouped) < 0.8 * padded(plain)


def test_dev_history_histogram_and_best_selection(tiny_model, items, tmp_path):
    data, pad = items
    dev = data[:24]
    cfg = _cfg(system="baseline", epochs=2, eval_every=3, selection="best_en_dev",
               gate_max_class_share=None, gate_min_margin=None)
    log = train(tiny_model, data, tmp_path / "run", cfg, 3, dev_items=dev, pad_id=pad)
    assert [d["step"] for d in log["dev"]] == [3, 6, 9, 10]  # every 3 steps and at the end
    assert all(sum(d["histogram"]) == len(dev) for d in log["dev"])
    best = max(log["dev"], key=lambda d: (d["en_dev_accuracy"], -d["step"]))
    assert log["selected"]["step"] == best["step"]
    assert log["gate"] == {"run": False, "reason": "gate disabled in train params"}
    assert log["runtime"]["device"] == "cpu" and log["runtime"]["autocast"] == "fp32"
    assert not (tmp_path / "run" / "checkpoints").exists()  # removed once the run finished


def test_gate_stops_a_run_that_learned_nothing(tiny_model, items, tmp_path):
    from salt.train import NothingLearned

    data, pad = items
    dev = data[:24]
    # a margin no model can reach: the gate must fail, name the run and show the histogram
    cfg = _cfg(system="baseline", gate_max_class_share=0.95, gate_min_margin=1.0)
    with pytest.raises(NothingLearned) as err:
        train(tiny_model, data, tmp_path / "bad", cfg, 3, dev_items=dev, pad_id=pad,
              run_name="xnli-baseline-0")
    msg = str(err.value)
    assert msg.startswith("xnli-baseline-0 learned nothing")
    assert "majority share" in msg and "histogram [" in msg and "English dev accuracy" in msg
    log = json.loads((tmp_path / "bad" / "train.json").read_text())
    assert log["gate"]["passed"] is False
    assert not (tmp_path / "bad" / "model.safetensors").exists()  # never becomes a result
    # thresholds any model meets: the same run passes and records the check
    ok = _cfg(system="baseline", gate_max_class_share=1.01, gate_min_margin=-1.0)
    log = train(tiny_model, data, tmp_path / "ok", ok, 3, dev_items=dev, pad_id=pad)
    assert log["gate"]["passed"] is True and sum(log["gate"]["histogram"]) == len(dev)


def test_gate_decision_on_known_records():
    from salt.train import NothingLearned, _gate

    cfg = TrainConfig(gate_max_class_share=0.95, gate_min_margin=0.01)
    good = {"step": 5, "histogram": [60, 40], "en_dev_accuracy": 0.70, "majority_share": 0.55}
    assert _gate(cfg, good, "r")["passed"] is True
    one_class = {**good, "histogram": [96, 4]}
    with pytest.raises(NothingLearned, match=r"96.0% of dev predictions are class 0"):
        _gate(cfg, one_class, "r")
    at_majority = {**good, "en_dev_accuracy": 0.555}
    with pytest.raises(NothingLearned, match=r"not 0\.010 above the majority share 0\.5500"):
        _gate(cfg, at_majority, "r")


def test_precision_must_match_the_runtime(tiny_model, items, tmp_path):
    from salt.runtime import Runtime

    data, pad = items
    with pytest.raises(ValueError, match="runtime decided 'fp32'"):
        train(tiny_model, data, tmp_path / "x", _cfg(precision="bf16"), 3, pad_id=pad,
              runtime=Runtime(torch.device("cpu"), "fp32"))
    with pytest.raises(ValueError, match="resolve 'auto'"):
        TrainConfig(precision="auto")


def test_mean_pooling_classifier(tiny_model, items, tmp_path):
    from salt.classifier import MeanPoolClassifier, build_classifier

    data, pad = items
    torch.manual_seed(0)
    model = build_classifier(tiny_model, 3, "mean").eval()
    assert isinstance(model, MeanPoolClassifier)
    it = data[0]
    ids = torch.tensor([it.input_ids])
    padded = torch.tensor([it.input_ids + [pad] * 5])
    mask = torch.tensor([[1] * len(it.input_ids) + [0] * 5])
    with torch.no_grad():
        a = model(input_ids=ids).logits
        b = model(input_ids=padded, attention_mask=mask).logits  # padding does not count
        h = model.encoder(input_ids=ids).last_hidden_state.mean(1)
        manual = model.classifier(h)
        embeds = model(inputs_embeds=model.get_input_embeddings()(ids)).logits
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(a, manual, atol=1e-5)
    assert torch.allclose(a, embeds, atol=1e-5)
    log = train(tiny_model, data, tmp_path / "run", _cfg(), 3, pad_id=pad, pooling="mean")
    assert log["pooling"] == "mean"
    loaded = load_trained(tiny_model, tmp_path / "run", 3)
    saved = load_file(tmp_path / "run" / "model.safetensors")
    assert "classifier.weight" in saved and isinstance(loaded, MeanPoolClassifier)
    assert torch.equal(loaded.classifier.weight, saved["classifier.weight"])
    with pytest.raises(ValueError, match="pooling 'max'"):
        build_classifier(tiny_model, 3, "max")


def test_resume_with_best_en_dev_selection(tiny_model, items, tmp_path):
    data, pad = items
    cfg = _cfg(eval_every=2, selection="best_en_dev", gate_max_class_share=None,
               gate_min_margin=None)
    full = train(tiny_model, data, tmp_path / "full", cfg, 3, dev_items=data[:16], pad_id=pad)
    train(tiny_model, data, tmp_path / "part", cfg, 3, dev_items=data[:16], pad_id=pad,
          stop_after=3)
    resumed = train(tiny_model, data, tmp_path / "part", cfg, 3, dev_items=data[:16], pad_id=pad)
    assert resumed["resumed_from"] == 2
    assert resumed["dev"] == full["dev"] and resumed["selected"] == full["selected"]
    a = load_file(tmp_path / "full" / "model.safetensors")
    b = load_file(tmp_path / "part" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.skipif(not __import__("salt.runtime", fromlist=["x"]).bf16_supported(
    torch.device("cpu")), reason="this CPU has no native bf16")
def test_recorded_runtime_is_read_back_from_the_training_forward(tiny_model, items, tmp_path):
    data, pad = items
    log = train(tiny_model, data[:16], tmp_path / "bf16", _cfg(system="baseline",
                precision="bf16"), 3, pad_id=pad)
    assert log["runtime"] == {"device": "cpu", "attention": "eager", "weights_dtype": "float32",
                              "autocast": "bf16"}


def test_attention_setting_resolves_per_device_and_reaches_the_training_forward(
        tiny_model, items, tmp_path):
    from salt.train import attention_for

    assert attention_for("auto", torch.device("cpu")) == "eager"
    assert attention_for("auto", torch.device("cuda")) == "sdpa"
    assert attention_for("sdpa", torch.device("cpu")) == "sdpa"
    with pytest.raises(ValueError, match=r"train\.attention: unknown 'flash'"):
        TrainConfig(attention="flash")
    data, pad = items
    cfg = _cfg(system="baseline")
    logs = {a: train(tiny_model, data[:16], tmp_path / a, replace(cfg, attention=a), 3,
                     pad_id=pad) for a in ("auto", "sdpa")}
    assert logs["auto"]["runtime"]["attention"] == "eager"
    assert logs["sdpa"]["runtime"]["attention"] == "sdpa"
    # the two kernels compute the same function: the same run ends with the same weights
    # up to float rounding
    a = load_file(tmp_path / "auto" / "model.safetensors")
    b = load_file(tmp_path / "sdpa" / "model.safetensors")
    assert set(a) == set(b)
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)

