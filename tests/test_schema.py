"""Metrics schema v2: what it accepts, what it refuses, and that errors name file and key path."""

from __future__ import annotations

import copy
import json

import pytest

from claims.results import make_metrics
from salt.schema import (
    RUN_SPECIFIC,
    SCHEMA_VERSION,
    SchemaError,
    load_metrics,
    run_specific_removed,
    validate_metrics,
)


def base() -> dict:
    return make_metrics("xnli", "salt", 0, {"en": 60, "fr": 50}, 100)


def test_valid_round_trip_and_version() -> None:
    m = validate_metrics(base(), "x.json")
    assert m["schema_version"] == SCHEMA_VERSION == 2
    assert m["provenance"]["origin"]["kind"] == "pipeline"
    assert validate_metrics(json.loads(json.dumps(m))) == m


@pytest.mark.parametrize("arm", ["xlm-r_large", "mBERT+SALT", "t5.v1"])
def test_free_arm_names(arm: str) -> None:
    m = base()
    m["system"] = arm
    assert validate_metrics(m)["system"] == arm


@pytest.mark.parametrize("arm", ["", "has space", "a/b"])
def test_bad_arm_names_refused(arm: str) -> None:
    m = base()
    m["system"] = arm
    with pytest.raises(SchemaError, match=r"f\.json: key 'system'"):
        validate_metrics(m, "f.json")


def test_summary_only_file_is_valid() -> None:
    m = make_metrics("xnli", "salt", 0, {"en": 60}, predictions=False)
    assert validate_metrics(m)["predictions"] is None


def test_import_may_leave_provenance_unknown_but_pipeline_may_not() -> None:
    m = base()
    for key in ("profile", "model", "sizes", "params", "params_hash", "git_commit", "split"):
        m["provenance"][key] = None
    with pytest.raises(SchemaError, match=r"only imported files may leave provenance unknown"):
        validate_metrics(m, "p.json")
    m["provenance"]["origin"] = {"kind": "import", "format": "csv", "source": "table.csv",
                                 "sha256": None}
    assert validate_metrics(m)["provenance"]["model"] is None


@pytest.mark.parametrize("path, value, key", [
    (("languages", "fr", "correct"), 101, "languages.fr"),
    (("languages", "fr", "accuracy"), 0.7, "languages.fr"),
    (("languages", "fr", "total"), 0, "languages.fr.total"),
    (("seed",), "0", "seed"),
    (("provenance", "split"), "train", "provenance.split"),
    (("provenance", "data_source"), "local:/abs/path", "provenance.data_source"),
    (("provenance", "origin", "source"), "/home/me/metrics.json", "provenance.origin"),
    (("provenance", "origin", "kind"), "guess", "provenance.origin.kind"),
    (("extra", "budgets"), [{"stage": "train", "kind": "steps", "limit": 5, "used": 5}],
     "extra.budgets.0.cut_short"),
    (("extra", "unknown_block"), {}, "extra.unknown_block"),
])
def test_bad_values_name_the_key_path(path: tuple, value: object, key: str) -> None:
    m = base()
    node = m
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    with pytest.raises(SchemaError) as info:
        validate_metrics(m, "results/xnli-salt-0.json")
    assert str(info.value).startswith("results/xnli-salt-0.json: ")
    assert f"'{key}" in str(info.value)


def test_missing_key_and_prediction_length() -> None:
    m = base()
    del m["provenance"]["params_hash"]
    with pytest.raises(SchemaError, match=r"missing key 'provenance.params_hash'"):
        validate_metrics(m, "f.json")
    m = base()
    m["predictions"]["fr"]["predicted"].pop()
    with pytest.raises(SchemaError, match=r"lengths differ"):
        validate_metrics(m, "f.json")


def test_typed_budget_block() -> None:
    m = base()
    m["extra"] = {"budgets": [{"stage": "mlm_head", "kind": "sentences", "limit": 100,
                               "used": 100, "cut_short": True}],
                  "train": {"steps": 3, "wall_time_s": 1.5, "selected": "last",
                            "budget": {"limit": 3, "used": 3, "cut_short": False}}}
    out = validate_metrics(m)
    assert out["extra"]["budgets"][0]["cut_short"] is True
    assert out["extra"]["train"]["budget"]["cut_short"] is False


def test_v1_upgraded_with_unknowns(tmp_path) -> None:
    m = base()
    v1 = copy.deepcopy(m)
    v1["schema_version"] = 1
    for key in ("split", "origin", "runtime"):
        del v1["provenance"][key]
    v1["provenance"]["data_source"] = "local:/work/shared/data"
    path = tmp_path / "xnli-salt-0.json"
    path.write_text(json.dumps(v1))
    out = load_metrics(path)
    assert out["schema_version"] == 2
    assert out["provenance"]["split"] is None and out["provenance"]["runtime"] is None
    assert out["provenance"]["origin"]["source"] == "xnli-salt-0.json"
    assert out["provenance"]["data_source"] == "local:r0"  # the data id, no machine path


def test_unsupported_version_and_bad_json(tmp_path) -> None:
    m = base()
    m["schema_version"] = 3
    with pytest.raises(SchemaError, match=r"schema_version"):
        validate_metrics(m, "f.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(SchemaError, match=r"bad.json: not valid JSON"):
        load_metrics(bad)
    with pytest.raises(SchemaError, match=r"file not found"):
        load_metrics(tmp_path / "none.json")


def test_run_specific_fields_removed() -> None:
    m = validate_metrics({**base(), "extra": {"train": {"steps": 2, "wall_time_s": 9.0}}})
    other = copy.deepcopy(m)
    other["provenance"]["wall_time_s"] = 99.0
    other["provenance"]["created_utc"] = "2030-01-01T00:00:00Z"
    other["extra"]["train"]["wall_time_s"] = 1.0
    assert m != other
    assert run_specific_removed(m) == run_specific_removed(other)
    assert "provenance.wall_time_s" in RUN_SPECIFIC
    other["extra"]["train"]["steps"] = 3  # not run-specific: still a difference
    assert run_specific_removed(m) != run_specific_removed(other)
