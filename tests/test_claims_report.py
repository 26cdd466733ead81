"""Loading metrics folders (every refusal names file and field), the report files and the CLI."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from claims.__main__ import main
from claims.report import write_report
from claims.results import ResultsError, load_properties, load_results, make_metrics
from claims.stats import audit
from salt.schema import SchemaError
from salt.tasks import PAWSX, XNLI

SPECS = {"xnli": XNLI, "pawsx": PAWSX}
ARMS = {"salt": [72, 73, 74], "baseline": [70, 71, 70]}


def write_set(root: Path, tasks: tuple[str, ...] = ("xnli", "pawsx"), **kw: Any) -> list[Path]:
    """A valid folder: 3 seeds per arm, SALT clearly better; returns the written paths."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for task in tasks:
        for system, counts in ARMS.items():
            for seed, c in enumerate(counts):
                m = make_metrics(task, system, seed, dict.fromkeys(SPECS[task].languages, c),
                                 **kw)
                path = root / task / f"{system}-{seed}.json"
                path.parent.mkdir(exist_ok=True)
                path.write_text(json.dumps(m))
                paths.append(path)
    return paths


def edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


# --------------------------------------------------------------------------- bad input


def _drop_params_hash(m: dict[str, Any]) -> None:
    del m["provenance"]["params_hash"]


def _other_hash(m: dict[str, Any]) -> None:
    m["provenance"]["params_hash"] = "h1"


def _other_profile(m: dict[str, Any]) -> None:
    m["provenance"]["profile"] = "paper"


def _other_model(m: dict[str, Any]) -> None:
    m["provenance"]["model"] = "tiny"


def _other_uids(m: dict[str, Any]) -> None:
    m["predictions"]["fr"]["uids"][0] = "xnli/test-fr:999"


def _other_gold(m: dict[str, Any]) -> None:
    labels = m["predictions"]["fr"]["labels"]
    pred = m["predictions"]["fr"]["predicted"]
    labels[0], pred[0] = (labels[0] + 1) % 3, (pred[0] + 1) % 3  # keeps correct unchanged


def _drop_language(m: dict[str, Any]) -> None:
    for key in ("languages", "predictions"):
        del m[key]["ur"]
    acc = [v["accuracy"] for v in m["languages"].values()]
    m["averages"]["all"] = sum(acc) / len(acc)
    m["averages"]["without_en"] = sum(acc[1:]) / len(acc[1:])
    ur = [m["languages"][x]["accuracy"] for x in ("sw", "hi", "th")]
    m["averages"]["under_resourced"] = sum(ur) / 3


def _wrong_average(m: dict[str, Any]) -> None:
    m["averages"]["without_en"] += 0.01


def _wrong_correct(m: dict[str, Any]) -> None:
    m["predictions"]["fr"]["predicted"][0] = (m["predictions"]["fr"]["labels"][0] + 1) % 3


BAD = [
    (_drop_params_hash, "provenance.params_hash"),
    (_other_hash, "provenance.params_hash"),
    (_other_profile, "provenance.profile"),
    (_other_model, "provenance.model"),
    (_other_uids, "predictions.fr.uids"),
    (_other_gold, "predictions.fr.labels"),
    (_drop_language, "languages"),
    (_wrong_average, "averages.without_en"),
    (_wrong_correct, "languages.fr.correct"),
]


@pytest.mark.parametrize(("change", "field"), BAD, ids=[f for _, f in BAD])
def test_bad_input_names_file_and_field(tmp_path: Path, change: Callable[..., None],
                                        field: str) -> None:
    paths = write_set(tmp_path, tasks=("xnli",))
    target = paths[-1]  # a baseline file, compared against earlier ones
    edit(target, change)
    with pytest.raises(SchemaError) as err:
        load_results(tmp_path)
    assert str(target) in str(err.value) and field in str(err.value)


def test_duplicate_seed_names_both_files(tmp_path: Path) -> None:
    paths = write_set(tmp_path, tasks=("xnli",))
    copy = tmp_path / "again" / "dup.json"
    copy.parent.mkdir()
    copy.write_text(paths[0].read_text())
    with pytest.raises(ResultsError) as err:
        load_results(tmp_path)
    msg = str(err.value)
    assert "'seed'" in msg and str(paths[0]) in msg and "dup.json" in msg


def test_expected_params_hash(tmp_path: Path) -> None:
    write_set(tmp_path, tasks=("xnli",))
    assert load_results(tmp_path, expected_params_hash="h0").scale.params_hash == "h0"
    with pytest.raises(ResultsError, match=re.escape("provenance.params_hash")):
        load_results(tmp_path, expected_params_hash="other")


def test_no_results_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no metrics files"):
        load_results(tmp_path)
    with pytest.raises(ResultsError, match="not found"):
        load_results(tmp_path / "absent")


def test_invalid_json_names_file(tmp_path: Path) -> None:
    write_set(tmp_path, tasks=("xnli",))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(SchemaError, match=re.escape("broken.json")):
        load_results(tmp_path)


def test_properties_file_validation(tmp_path: Path) -> None:
    assert load_properties(tmp_path / "none.json") == {}
    good = tmp_path / "p.json"
    good.write_text(json.dumps({"C3": {"verdict": "holds", "evidence": "test_x"}}))
    assert load_properties(good) == {"C3": {"verdict": "holds", "evidence": "test_x"}}
    for content, fld in (({"C3": {"verdict": "maybe", "evidence": ""}}, "C3.verdict"),
                         ({"C1": {"verdict": "holds", "evidence": ""}}, "C1"),
                         ({"C99": {"verdict": "holds", "evidence": ""}}, "C99"),
                         ({"C4": {"verdict": "holds"}}, "C4.evidence")):
        good.write_text(json.dumps(content))
        with pytest.raises(ResultsError) as err:
            load_properties(good)
        assert str(good) in str(err.value) and fld in str(err.value)


def test_scale_information(tmp_path: Path) -> None:
    write_set(tmp_path)
    sc = load_results(tmp_path).scale
    assert (sc.profile, sc.model, sc.n_files) == ("proxy", "e5-small", 12)
    assert sc.n_per_arm == {"pawsx": {"baseline": 3, "salt": 3}, "xnli": {"baseline": 3, "salt": 3}}
    assert sc.seeds["xnli"]["salt"] == [0, 1, 2]
    assert sc.sizes["xnli"] == [{"train": 1000, "test": 100}]


# --------------------------------------------------------------------------- report files


def test_report_files(tmp_path: Path) -> None:
    extra = {"codeswitch": {"dict_translation_share": 0.01}, "fill_mask": {"top1": {"fr": 0.12}}}
    write_set(tmp_path / "res", extra=extra)
    result = audit(load_results(tmp_path / "res"),
                   {"C3": {"verdict": "holds", "evidence": "test_target_vocab"}},
                   seed=5, n_resamples=999)
    paths = write_report(result, tmp_path / "out")
    md = paths["markdown"].read_text()
    assert "## Summary" in md and "| claim" in md and "| verdict" in md.replace("  ", " ")
    for cid in [f"C{i}" for i in range(1, 11)]:
        assert f"**{cid}**" in md
    assert "Bootstrap seed 5" in md and "never confirms" in md
    assert "### Under-resourced group (sw ur hi th)" in md
    assert "## Paper vs rerun" in md and "contradiction" in md and "McNemar" in md
    assert '"fill_mask"' in md and "mixup with noisy substitutions" in md
    assert "](claims_per_language.png)" in md
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads(paths["json"].read_text())
    verdicts = {c["id"]: c["verdict"] for c in doc["claims"]}
    assert verdicts["C1"] == "holds" and verdicts["C3"] == "holds" and verdicts["C2"] == "not run"
    assert doc["settings"]["bootstrap_seed"] == 5
    assert doc["tasks"]["xnli"]["averages"]["all"]["welch"]["t"] == pytest.approx(4.0)
    assert doc["scale"]["profile"] == "proxy" and doc["scale"]["git_commits"] == ["abc1234"]
    for c in doc["claims"]:  # markdown and JSON say the same
        assert f"**{c['verdict']}**" in md


# --------------------------------------------------------------------------- CLI


def test_cli_writes_report_and_summarises(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    write_set(tmp_path / "res")
    out = tmp_path / "out"
    out.mkdir()
    (out / "properties.json").write_text(json.dumps({"C7": {"verdict": "fails",
                                                            "evidence": "r outside [0,1]"}}))
    code = main(["audit", str(tmp_path / "res"), "--out", str(out), "--seed", "3",
                 "--expected-params-hash", "h0"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert [ln.split()[0] for ln in lines[:10]] == [f"C{i}" for i in range(1, 11)]
    assert lines[0].split()[1] == "holds" and lines[6].split()[1] == "fails"
    assert (out / "claims.md").is_file() and (out / "claims.json").is_file()


@pytest.mark.parametrize("case", ["missing_key", "mixed_hash", "empty", "expected_hash",
                                  "properties"])
def test_cli_bad_input_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              case: str) -> None:
    res = tmp_path / "res"
    res.mkdir()
    args = ["audit", str(res), "--out", str(tmp_path / "out")]
    expect = "no metrics files"
    if case != "empty":
        paths = write_set(res, tasks=("xnli",))
        if case == "missing_key":
            edit(paths[1], _drop_params_hash)
            expect = f"{paths[1]}: missing key 'provenance.params_hash'"
        elif case == "mixed_hash":
            edit(paths[2], _other_hash)
            expect = f"{paths[2]}: field 'provenance.params_hash'"
        elif case == "expected_hash":
            args += ["--expected-params-hash", "zzz"]
            expect = "'provenance.params_hash'"
        else:
            args += ["--properties", str(tmp_path / "nope.json")]
            expect = "nope.json: properties file not found"
    assert main(args) == 2
    assert expect in capsys.readouterr().err
    assert not (tmp_path / "out" / "claims.md").exists()


def test_majority_class_runs_are_flagged(tmp_path):
    """A run whose every prediction is one class is named in the warnings: a task that did not
    learn must not pass silently as 'no difference'."""
    from claims.results import load_results, make_metrics

    for system in ("baseline", "salt"):
        m = make_metrics("pawsx", system, 0, {"en": 50, "de": 50})
        if system == "salt":
            for pr in m["predictions"].values():
                pr["predicted"] = [0] * len(pr["predicted"])
            for lang, pr in m["predictions"].items():
                c = sum(int(p == y) for p, y in zip(pr["predicted"], pr["labels"], strict=True))
                m["languages"][lang].update(correct=c, accuracy=c / len(pr["labels"]))
            acc = [r["accuracy"] for r in m["languages"].values()]
            m["averages"].update(all=sum(acc) / 2, without_en=m["languages"]["de"]["accuracy"])
        (tmp_path / f"pawsx-{system}-0.json").write_text(json.dumps(m))
    warnings = load_results(tmp_path).warnings
    assert any("predict one class" in w and "pawsx-salt-0" in w and "pawsx-baseline-0" not in w
               for w in warnings), warnings
