"""The mutation suite: every patch still applies to the current source exactly once (drift shows
here), patched files still compile, and a fast subset is killed by its checks."""

from __future__ import annotations

import py_compile
import shutil
from pathlib import Path

import pytest

from claims.mutants import MUTANTS, REPO, Edit, Mutant, PatchError, apply, run_mutant, summary
from claims.properties import CHECKS


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_every_patch_matches_exactly_once_and_compiles(mutant: Mutant, tmp_path: Path) -> None:
    for edit in mutant.edits:
        text = (REPO / edit.file).read_text(encoding="utf-8")
        hits = [line for line in text.split("\n") if line.strip() == edit.old.strip()]
        assert len(hits) == 1, f"{mutant.name}: {edit.file} has the line {len(hits)} times"
        shutil.copytree(REPO / Path(edit.file).parent, tmp_path / Path(edit.file).parent,
                        dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    apply(mutant, tmp_path)
    for edit in mutant.edits:
        patched = (tmp_path / edit.file).read_text(encoding="utf-8")
        assert patched != (REPO / edit.file).read_text(encoding="utf-8")
        assert edit.new.strip() in patched
        py_compile.compile(str(tmp_path / edit.file), doraise=True)
    assert set(mutant.checks) <= set(CHECKS)


def test_names_unique_and_issue_16_kinds_covered() -> None:
    names = [m.name for m in MUTANTS]
    assert len(names) == len(set(names))
    for kind in ("r-scalar", "r-shared-in-batch", "r-cached-across-steps", "r-outside-0-1",
                 "threshold-ignored", "full-vocabulary-prediction", "cap-ignored",
                 "dropout-at-evaluation", "misplaced-substitution", "mix-another-instance",
                 "collate-another-instance", "mix-shifted-copy", "special-tokens-candidates",
                 "synonyms-forced-on", "wrong-record-labels"):
        assert kind in names


def test_a_drifted_patch_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "salt").mkdir()
    (tmp_path / "salt" / "x.py").write_text("a = 1\na = 1\n")
    twice = Mutant("twice", "", (Edit("salt/x.py", "a = 1", "a = 2"),), ("C7",))
    with pytest.raises(PatchError, match="occurs 2 times"):
        apply(twice, tmp_path)
    gone = Mutant("gone", "", (Edit("salt/x.py", "b = 1", "b = 2"),), ("C7",))
    with pytest.raises(PatchError, match="occurs 0 times"):
        apply(gone, tmp_path)


def test_summary_counts_survivors_with_reasons() -> None:
    from claims.mutants import Outcome

    m = MUTANTS[0]
    s = summary([Outcome(m, "killed"), Outcome(m, "survived"), Outcome(m, "killed (crash)"),
                 Outcome(m, "patch error", evidence="drift")])
    assert (s["ran"], s["killed"], s["kill_rate"]) == (3, 2, round(2 / 3, 3))
    assert s["survivors"][0]["reason"].startswith("gap") and s["patch_errors"] == ["drift"]


FAST = ("r-outside-0-1", "mix-swapped-weights", "wrong-record-labels")


@pytest.mark.slow
@pytest.mark.parametrize("name", FAST)
def test_fast_subset_is_killed(name: str, data_dir) -> None:
    mutant = next(m for m in MUTANTS if m.name == name)
    out = run_mutant(mutant, mutant.checks, timeout_s=600)
    assert out.status == "killed", (out.status, out.by, out.evidence)
    assert any(v == "fails" for v in out.by.values())
