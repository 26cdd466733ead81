"""The audit refuses or flags fabricated and inconsistent runs (issue 16 item 3, issue 13 item 4).

Every case is built here from small synthetic metrics (``make_metrics``) and must be refused with a
message naming the file(s) and the field, or flagged so the verdict can say so.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from claims.results import ResultsError, load_results, make_metrics
from salt.provenance import params_hash
from salt.tasks import TASKS

LANGS = ("en", "fr", "de")
SALT_COUNTS = (62, 64, 63)
BASE_COUNTS = (55, 57, 56)


def write(root: Path, m: dict[str, Any], name: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / (name or f"{m['task']}-{m['system']}-{m['seed']}.json")
    path.write_text(json.dumps(m))
    return path


def honest(root: Path, langs: tuple[str, ...] = LANGS, seeds: tuple[int, ...] = (0, 1, 2),
           **kw: Any) -> dict[str, list[dict[str, Any]]]:
    """Three seeds per arm, each run with its own predictions."""
    out: dict[str, list[dict[str, Any]]] = {"salt": [], "baseline": []}
    for arm, counts in (("salt", SALT_COUNTS), ("baseline", BASE_COUNTS)):
        for seed, c in zip(seeds, counts, strict=True):
            m = make_metrics("xnli", arm, seed, dict.fromkeys(langs, c), **kw)
            write(root, m)
            out[arm].append(m)
    return out


def test_honest_folder_loads_paired_and_complete(tmp_path: Path) -> None:
    honest(tmp_path)
    rs = load_results(tmp_path)
    tr = rs.tasks["xnli"]
    assert tr.arms == ("baseline", "salt")
    assert rs.pairing("xnli", "salt", "baseline").paired
    assert rs.require_paired("xnli", "salt", "baseline").seeds == (0, 1, 2)
    assert tr.coverage(("en", "fr")).complete and tr.coverage(("en", "fr")).qualifier() == ""
    assert rs.unverifiable == []


def test_one_run_copied_under_three_seeds_is_refused(tmp_path: Path) -> None:
    honest(tmp_path)
    run = make_metrics("xnli", "salt", 0, dict.fromkeys(LANGS, 70))
    for seed in (0, 1, 2):
        write(tmp_path, {**copy.deepcopy(run), "seed": seed,
                         "provenance": {**run["provenance"], "seeds": {"train": seed}}})
    with pytest.raises(ResultsError, match=r"xnli-salt-[12]\.json: field 'predictions': identical "
                                           r"per-item predictions to .*xnli-salt-[01]\.json"):
        load_results(tmp_path)


def test_baseline_relabelled_as_salt_seed_is_refused(tmp_path: Path) -> None:
    runs = honest(tmp_path)
    fake = copy.deepcopy(runs["baseline"][0])
    fake["system"], fake["seed"] = "salt", 3
    write(tmp_path, fake)
    with pytest.raises(ResultsError, match=r"identical per-item predictions.*baseline seed 0 vs "
                                           r"salt seed 3|identical per-item predictions.*salt seed "
                                           r"3 vs baseline seed 0"):
        load_results(tmp_path)


def test_degenerate_identical_runs_are_flagged_not_refused(tmp_path: Path) -> None:
    for arm in ("salt", "baseline"):
        for seed in (0, 1):
            m = make_metrics("pawsx", arm, seed, {"en": [True, False] * 5}, 10)
            for p in m["predictions"].values():
                p["predicted"] = [0] * 10
            m["languages"]["en"] = {"correct": 5, "total": 10, "accuracy": 0.5}
            write(tmp_path, m)
    rs = load_results(tmp_path)
    assert any("predict one class" in w for w in rs.warnings)


@pytest.mark.parametrize("n_langs", [14, 2, 1])
def test_fewer_languages_than_the_claim_names_are_flagged(tmp_path: Path, n_langs: int) -> None:
    langs = TASKS["xnli"].languages[:n_langs]
    honest(tmp_path, langs)
    tr = load_results(tmp_path).tasks["xnli"]
    cov = tr.coverage("all")
    assert not cov.complete
    assert cov.qualifier().startswith(f"on {n_langs} of 15 languages (missing: ")
    assert len(cov.missing) == 15 - n_langs and tr.missing_languages("all") == cov.missing


def test_summary_counts_without_predictions_are_unverifiable(tmp_path: Path) -> None:
    honest(tmp_path)
    raised = make_metrics("xnli", "salt", 3, dict.fromkeys(LANGS, 95), predictions=False)
    path = write(tmp_path, raised)
    rs = load_results(tmp_path)
    assert rs.unverifiable == [path]
    assert [r.path for r in rs.tasks["xnli"].unverifiable("salt")] == [path]
    assert any("unverifiable" in w and str(path) in w for w in rs.warnings)


def test_summary_only_copies_are_flagged(tmp_path: Path) -> None:
    for seed in (0, 1):
        write(tmp_path, make_metrics("xnli", "salt", seed, dict.fromkeys(LANGS, 70),
                                     predictions=False))
    rs = load_results(tmp_path)
    assert any("identical correct counts" in w for w in rs.warnings)


def test_dev_items_are_refused(tmp_path: Path) -> None:
    honest(tmp_path)
    dev = make_metrics("xnli", "salt", 3, dict.fromkeys(LANGS, 60), split="dev")
    dev["provenance"]["split"] = "test"  # the file claims test items, the uids say dev
    write(tmp_path, dev)
    with pytest.raises(ResultsError, match=r"xnli-salt-3\.json: field 'predictions\.en\.uids': "
                                           r"'xnli/dev-en:1' comes from the 'dev' split"):
        load_results(tmp_path)


def test_declared_dev_split_is_refused(tmp_path: Path) -> None:
    write(tmp_path, make_metrics("xnli", "salt", 0, {"en": 5}, 10, split="dev"))
    with pytest.raises(ResultsError, match=r"field 'provenance.split': 'dev'"):
        load_results(tmp_path)
    assert load_results(tmp_path, split="dev").tasks["xnli"].n("salt") == 1


def test_uid_of_another_language_is_refused(tmp_path: Path) -> None:
    m = make_metrics("xnli", "salt", 0, {"en": 5, "fr": 5}, 10)
    m["predictions"]["fr"]["uids"][0] = "xnli/test-de:1"
    write(tmp_path, m)
    with pytest.raises(ResultsError, match=r"predictions.fr.uids.*item of xnli/de"):
        load_results(tmp_path)


def test_predicted_label_outside_the_label_set_is_refused(tmp_path: Path) -> None:
    m = make_metrics("xnli", "salt", 0, {"en": 5}, 10)
    m["predictions"]["en"]["predicted"][9] = 3  # xnli has labels 0..2; item 9 was wrong anyway
    write(tmp_path, m)
    with pytest.raises(ResultsError, match=r"field 'predictions\.en\.predicted': label 3 of "
                                           r"'xnli/test-en:10'.*outside the xnli label set 0\.\.2"):
        load_results(tmp_path)


def test_different_train_sizes_within_an_arm_are_refused(tmp_path: Path) -> None:
    honest(tmp_path)
    write(tmp_path, make_metrics("xnli", "salt", 3, dict.fromkeys(LANGS, 61), train_size=5000))
    with pytest.raises(ResultsError, match=r"xnli-salt-3\.json: field 'provenance\.sizes\.train': "
                                           r"5000 differs from 1000"):
        load_results(tmp_path)


@pytest.mark.parametrize("field, value", [("model", "hf:xlm-roberta-base"),
                                          ("data_revision", "r1"), ("profile", "paper")])
def test_runs_of_one_arm_from_other_settings_are_refused(tmp_path: Path, field: str,
                                                         value: str) -> None:
    honest(tmp_path)
    m = make_metrics("xnli", "salt", 3, dict.fromkeys(LANGS, 61))
    m["provenance"][field] = value
    write(tmp_path, m)
    with pytest.raises(ResultsError, match=rf"xnli-salt-3\.json: field 'provenance\.{field}'"):
        load_results(tmp_path)


def test_different_test_size_within_an_arm_is_refused(tmp_path: Path) -> None:
    honest(tmp_path)
    m = make_metrics("xnli", "salt", 3, dict.fromkeys(LANGS, 61), 120)
    m["provenance"]["sizes"]["test_per_language"] = 100  # hide it in sizes: totals still differ
    write(tmp_path, m)
    with pytest.raises(ResultsError, match=r"xnli-salt-3\.json: field 'languages\.en\.total': "
                                           r"120 differs from 100"):
        load_results(tmp_path)


def test_edited_params_with_unchanged_hash_are_refused(tmp_path: Path) -> None:
    m = make_metrics("xnli", "salt", 0, {"en": 5}, 10, params={"train": {"lr": 1e-4}})
    assert m["provenance"]["params_hash"] == params_hash({"train": {"lr": 1e-4}})
    m["provenance"]["params"]["train"]["lr"] = 5e-4
    path = write(tmp_path, m)
    with pytest.raises(ResultsError, match=rf"{path.name}: field 'provenance\.params_hash'.*not "
                                           "the hash of the recorded provenance.params"):
        load_results(tmp_path)


def test_unpaired_seeds_are_reported_and_refused_for_a_paired_analysis(tmp_path: Path) -> None:
    for arm, seeds, counts in (("salt", (7, 8, 9), SALT_COUNTS), ("baseline", (0, 1, 2),
                                                                    BASE_COUNTS)):
        for seed, c in zip(seeds, counts, strict=True):
            write(tmp_path, make_metrics("xnli", arm, seed, dict.fromkeys(LANGS, c)))
    rs = load_results(tmp_path)
    pairing = rs.pairing("xnli", "salt", "baseline")
    assert not pairing.paired and pairing.seeds == ()
    assert "salt seeds [7, 8, 9] have no counterpart" in pairing.reason
    with pytest.raises(ResultsError, match=r"xnli-salt-7\.json.*field 'seed': the paired analysis"):
        rs.require_paired("xnli", "salt", "baseline")


def test_pipeline_arms_of_other_parameters_are_refused(tmp_path: Path) -> None:
    write(tmp_path, make_metrics("xnli", "salt", 0, {"en": 5}, 10, params={"a": 1}))
    write(tmp_path, make_metrics("xnli", "baseline", 0, {"en": 4}, 10, params={"a": 2}))
    with pytest.raises(ResultsError, match=r"field 'provenance.params_hash'.*one pipeline experiment"):
        load_results(tmp_path)


def test_imported_arms_may_differ_in_model_and_unknowns_are_warned(tmp_path: Path) -> None:
    for arm, model in (("mbert", "hf:bert-base-multilingual-cased"), ("xlmr", None)):
        m = make_metrics("xnli", arm, 0, {"en": 5 + len(arm)}, 10, model=model or "x")
        m["provenance"].update(model=model, params=None, params_hash=None,
                               origin={"kind": "import", "format": "csv", "source": "t.csv",
                                       "sha256": None})
        write(tmp_path, m)
    m2 = make_metrics("xnli", "xlmr", 1, {"en": 4}, 10)
    m2["provenance"].update(params=None, params_hash=None,
                            origin={"kind": "import", "format": "csv", "source": "t.csv",
                                    "sha256": None})
    write(tmp_path, m2)
    rs = load_results(tmp_path)
    assert rs.tasks["xnli"].arms == ("mbert", "xlmr")
    assert any("provenance.model is unknown" in w for w in rs.warnings)


def test_scale_decided_by_model_and_sizes_not_profile(tmp_path: Path) -> None:
    honest(tmp_path / "small", profile="paper")  # a self-declared paper profile
    sc = load_results(tmp_path / "small").scale
    assert sc.profile == "paper" and not sc.at_paper_scale
    assert "e5-small is not the paper's" in sc.caveat()
    full = tmp_path / "full"
    for arm, c in (("salt", 3600), ("baseline", 3500)):
        for seed in (0, 1):
            write(full, make_metrics("xnli", arm, seed, {"en": c + seed}, 5010,
                                     model="hf:bert-base-multilingual-cased",
                                     train_size=392_702, profile="mine"))
    sc = load_results(full).scale
    assert sc.at_paper_scale and sc.caveat() is None and sc.profile == "mine"


def test_duplicate_run_and_languages_differing_refused(tmp_path: Path) -> None:
    m = make_metrics("xnli", "salt", 0, {"en": 5}, 10)
    write(tmp_path, m, "a.json")
    write(tmp_path, m, "b.json")
    with pytest.raises(ResultsError, match=r"field 'seed': duplicate xnli/salt/seed 0"):
        load_results(tmp_path)
