"""Evaluation on a fixture with known answers; averages; the metrics schema."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import pytest
import torch

from salt.encoding import Encoded
from salt.evaluate import averages, build_metrics, evaluate_languages
from salt.schema import SchemaError, load_metrics, validate_metrics
from salt.tasks import XNLI


class FirstTokenModel(torch.nn.Module):
    """Predicts label (first real token id mod 3): answers are known in advance."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        return SimpleNamespace(logits=torch.nn.functional.one_hot(input_ids[:, 0] % 3, 3).float())


def _items(lang, ids_labels):
    return [Encoded(f"xnli/test-{lang}:{i + 1}", [t, 5, 6][: 1 + i % 3], None, lab)
            for i, (t, lab) in enumerate(ids_labels)]


def test_known_answers_per_language():
    test = {
        "en": _items("en", [(0, 0), (1, 1), (2, 2), (3, 1)]),  # 3 of 4 right (3 % 3 = 0 != 1)
        "sw": _items("sw", [(4, 1), (5, 0)]),  # 1 of 2 right
    }
    langs, preds = evaluate_languages(FirstTokenModel(), XNLI, test, pad_id=0, batch_size=3)
    assert langs["en"] == {"correct": 3, "total": 4, "accuracy": 0.75}
    assert langs["sw"] == {"correct": 1, "total": 2, "accuracy": 0.5}
    assert preds["en"]["predicted"] == [0, 1, 2, 0]  # in input order despite length buckets
    assert preds["sw"]["uids"] == ["xnli/test-sw:1", "xnli/test-sw:2"]
    avg = averages(XNLI, langs)
    assert avg == {"all": 0.625, "without_en": 0.5, "under_resourced": 0.5}


def _provenance():
    return {"profile": "smoke", "model": "tiny", "sizes": {"train": 10}, "seeds": {"train": 0},
            "git_commit": "abc", "params_hash": "h", "params": {}, "versions": {},
            "device": "cpu", "data_source": "local:x", "data_revision": "r",
            "wall_time_s": 1.0, "created_utc": "2026-01-01T00:00:00+00:00"}


@pytest.fixture
def metrics():
    langs = {"en": {"correct": 3, "total": 4, "accuracy": 0.75},
             "fr": {"correct": 1, "total": 2, "accuracy": 0.5}}
    preds = {"en": {"uids": ["a", "b", "c", "d"], "labels": [0, 1, 2, 0],
                    "predicted": [0, 1, 2, 1]},
             "fr": {"uids": ["a", "b"], "labels": [0, 1], "predicted": [0, 0]}}
    return build_metrics(XNLI, "salt", 0, langs, preds, _provenance())


def test_metrics_round_trip(metrics, tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(metrics))
    assert load_metrics(path) == metrics
    assert metrics["averages"]["under_resourced"] is None


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: m.pop("provenance"), "missing key 'provenance'"),
        (lambda m: m["provenance"].pop("params_hash"), "missing key 'provenance.params_hash'"),
        (lambda m: m.update(system="other"), "key 'system' must be one of"),
        (lambda m: m["languages"]["en"].update(accuracy=0.9), "'languages.en.accuracy' 0.9"),
        (lambda m: m["languages"]["en"].update(correct=5), "correct=5 total=4"),
        (lambda m: m["predictions"]["en"]["uids"].pop(), "lists differ in length"),
        (lambda m: m.update(seed="0"), "key 'seed' must be int, got str"),
        (lambda m: m.update(schema_version=9), "schema_version 9 is not supported"),
    ],
)
def test_schema_names_the_bad_key(metrics, mutate, message):
    bad = copy.deepcopy(metrics)
    mutate(bad)
    with pytest.raises(SchemaError) as err:
        validate_metrics(bad, "results/x.json")
    assert "results/x.json" in str(err.value) and message in str(err.value)


def test_load_metrics_errors(tmp_path):
    with pytest.raises(SchemaError, match="file not found"):
        load_metrics(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SchemaError, match=r"bad\.json: not valid JSON"):
        load_metrics(tmp_path / "bad.json")


def test_runtime_replaces_the_bf16_flag_and_trace_reads_back():
    from salt.evaluate import predict
    from salt.runtime import Runtime

    items = _items("en", [(0, 0), (1, 1)])
    with pytest.raises(TypeError, match=r"salt\.runtime\.Runtime"):
        predict(FirstTokenModel(), items, 0, 2, True)
    trace: dict = {}
    preds = predict(FirstTokenModel(), items, 0, 2, Runtime(torch.device("cpu"), "fp32"),
                    trace=trace)
    assert preds == [0, 1]
    assert trace["device"] == "cpu" and trace["autocast"] == "fp32"
    assert trace["weights_dtype"] == "float32" and trace["logits_dtype"] == "float32"


def test_predict_restores_training_mode():
    from salt.evaluate import predict

    model = FirstTokenModel().train()
    predict(model, _items("en", [(0, 0)]), 0, 2)
    assert model.training
