"""Evaluation on a fixture with known answers; averages; the metrics schema."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from salt.encoding import Encoded
from salt.evaluate import averages, build_metrics, evaluate_languages
from salt.schema import load_metrics
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
            "wall_time_s": 1.0, "created_utc": "2026-01-01T00:00:00+00:00", "split": "test",
            "origin": {"kind": "pipeline", "format": None, "source": "results/metrics/m.json",
                       "sha256": None},
            "runtime": {"device": "cpu", "weights_dtype": "float32", "autocast": "fp32"}}


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
