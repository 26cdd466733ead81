"""Reproduction check and lock check: field-by-field comparison, run-specific fields only
ignored, a real clone + DVC run on a tiny pipeline, stale stages named, dry runs on a clone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from salt import lockcheck, reproduce
from salt.data import repository_root

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}


def _metrics(acc=0.5, wall=12.0, source="local:abc"):
    return {"languages": {"en": {"accuracy": acc, "correct": 5, "total": 10}},
            "provenance": {"wall_time_s": wall, "created_utc": "2026-01-01", "data_source": source,
                           "git_commit": "abc", "device": "cpu: x"},
            "extra": {"train": {"steps": 3, "wall_time_s": wall}}}


def test_compare_ignores_only_run_specific_fields():
    ignore = reproduce.run_specific()
    assert "provenance.wall_time_s" in ignore and "provenance.git_commit" in ignore
    assert reproduce.compare(_metrics(), _metrics(wall=99.0), ignore) == []
    diffs = reproduce.compare(_metrics(), _metrics(acc=0.6), ignore)
    assert diffs == ["languages.en.accuracy: reference 0.5, now 0.6"]
    changed = _metrics()
    changed["extra"]["train"]["steps"] = 4
    del changed["languages"]["en"]["total"]
    assert reproduce.compare(_metrics(), changed, ignore) == [
        "extra.train.steps: reference 3, now 4", "languages.en.total: missing (reference 10)"]
    assert reproduce.compare({"a": 1}, {"a": 1.0}, ignore) == ["a: reference 1, now 1.0"]


def test_absolute_paths_are_differences_wherever_they_are():
    ignore = reproduce.run_specific()
    both = _metrics(source="local:/work/shared/data")
    diffs = reproduce.compare(both, both, ignore)
    assert diffs == ["provenance.data_source: absolute path 'local:/work/shared/data'"]
    assert reproduce.absolute_paths({"uids": ["xnli/test-en:1"], "p": "work/model"}) == []


def test_compare_dirs_names_missing_and_extra_files(tmp_path):
    ref, new = tmp_path / "ref", tmp_path / "new"
    ref.mkdir()
    new.mkdir()
    assert "no reference metrics" in reproduce.compare_dirs(ref, new, ())[str(ref)][0]
    (ref / "a.json").write_text(json.dumps(_metrics()))
    (ref / "b.json").write_text(json.dumps(_metrics()))
    (new / "a.json").write_text(json.dumps(_metrics(wall=1.0)))
    (new / "c.json").write_text(json.dumps(_metrics()))
    out = reproduce.compare_dirs(ref, new, reproduce.run_specific())
    assert out == {"b.json": ["not produced by the rerun"],
                   "c.json": ["produced but not in the reference"]}


def test_machine_paths_in_any_output_are_found(tmp_path):
    clone, data = tmp_path / "clone", tmp_path / "data"
    (clone / "work" / "data").mkdir(parents=True)
    (clone / "dvc.lock").write_text("schema: '2.0'\n")
    (clone / "work" / "data" / "manifest.json").write_text(json.dumps({"src": f"local:{data}"}))
    (clone / "work" / "model.json").write_text(json.dumps({"path": "work/model/base"}))
    committed = clone / "results" / "reference" / "smoke" / "x.json"  # an input, not an output
    committed.parent.mkdir(parents=True)
    committed.write_text(json.dumps({"src": f"local:{data}"}))
    assert reproduce.machine_paths(clone, (clone, data)) == [
        f"work/data/manifest.json: contains the machine path {data}"]


STAGE = """import json, pathlib, sys, time, yaml
p = yaml.safe_load(open("params.yaml"))
out = pathlib.Path("results/metrics"); out.mkdir(parents=True, exist_ok=True)
for seed in p["seeds"]:
    m = {"languages": {"en": {"accuracy": p["scale"][p["profile"]] * (seed + 1)}},
         "provenance": {"wall_time_s": time.time(), "profile": p["profile"]}}
    (out / f"xnli-salt-{seed}.json").write_text(json.dumps(m))
"""


@pytest.fixture()
def tiny_study(tmp_path):
    """A git + DVC repository with one stage writing metrics from params (seconds to run)."""
    root = tmp_path / "study"
    root.mkdir()
    (root / "make.py").write_text(STAGE)
    (root / "params.yaml").write_text("profile: proxy\nseeds: [0, 1, 2]\n"
                                      "scale: {smoke: 0.25, proxy: 0.5}\n")
    (root / "dvc.yaml").write_text(
        "stages:\n  make:\n    cmd: python make.py\n    deps: [make.py]\n"
        "    params: [profile, seeds, scale]\n    outs:\n      - results/metrics:\n"
        "          cache: false\n")
    env = {**os.environ, **GIT_ENV}
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"],
                ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True)
    return root


def test_reproduce_clones_runs_and_compares(tiny_study, tmp_path, monkeypatch):
    monkeypatch.setenv("SALT_DATA_DIR", str(tmp_path))  # the tiny stage reads no data
    ref = tiny_study / "results" / "reference" / "smoke"
    ref.mkdir(parents=True)
    for seed in (0, 1):
        ref.joinpath(f"xnli-salt-{seed}.json").write_text(json.dumps(
            {"languages": {"en": {"accuracy": 0.25 * (seed + 1)}},
             "provenance": {"wall_time_s": 1.0, "profile": "smoke"}}))
    # committed outputs of another profile must not pass for the rerun's
    stale = tiny_study / "results" / "metrics" / "xnli-salt-2.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    env = {**os.environ, **GIT_ENV}
    subprocess.run(["git", "add", "-A"], cwd=tiny_study, env=env, check=True)
    subprocess.run(["git", "commit", "-qm", "results"], cwd=tiny_study, env=env, check=True)
    work = tmp_path / "w"
    work.mkdir()
    clone, cost = reproduce.reproduce(tiny_study, "smoke", work, seeds="0,1")
    assert cost["wall_s"] >= 0 and cost["peak_rss_mib"] > 0
    produced = clone / "results" / "metrics"
    assert sorted(p.name for p in produced.glob("*.json")) == ["xnli-salt-0.json",
                                                               "xnli-salt-1.json"]
    assert reproduce.compare_dirs(ref, produced, reproduce.run_specific()) == {}
    # a reference that disagrees in one value is reported, field named
    ref.joinpath("xnli-salt-1.json").write_text(json.dumps(
        {"languages": {"en": {"accuracy": 0.75}}, "provenance": {"profile": "smoke"}}))
    assert reproduce.compare_dirs(ref, produced, reproduce.run_specific()) == {
        "xnli-salt-1.json": ["languages.en.accuracy: reference 0.75, now 0.5"]}
    # --update rewrites the reference from the rerun
    monkeypatch.setattr(reproduce, "REFERENCE", {"smoke": Path("results/reference/smoke")})
    reproduce.update_reference(tiny_study, clone, "smoke")
    assert reproduce.compare_dirs(ref, produced, reproduce.run_specific()) == {}


def test_update_of_the_default_profile_drops_results_the_rerun_no_longer_writes(tmp_path):
    root, clone = tmp_path / "root", tmp_path / "clone"
    for seed in (0, 1, 2):  # the committed results: three seeds
        for sub in ("metrics", "summary", "plots"):
            path = root / "results" / sub / f"xnli-salt-{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("old")
    kept = root / "results" / "reference" / "smoke" / "xnli-salt-0.json"
    kept.parent.mkdir(parents=True)
    kept.write_text("reference")
    for sub in ("metrics", "summary", "plots"):  # the rerun: one seed
        path = clone / "results" / sub / "xnli-salt-0.json"
        path.parent.mkdir(parents=True)
        path.write_text("new")
    (clone / "reports").mkdir()
    (clone / "reports" / "claims.md").write_text("report")
    (clone / "dvc.lock").write_text("lock")
    reproduce.update_reference(root, clone, "proxy")
    for sub in ("metrics", "summary", "plots"):
        assert [p.name for p in (root / "results" / sub).iterdir()] == ["xnli-salt-0.json"]
        assert (root / "results" / sub / "xnli-salt-0.json").read_text() == "new"
    assert kept.read_text() == "reference"  # the smoke reference is not the proxy's to touch
    assert (root / "dvc.lock").read_text() == "lock"
    assert (root / "reports" / "claims.md").read_text() == "report"


def test_lockcheck_names_stale_stages(tiny_study):
    env = {**os.environ, **GIT_ENV}
    subprocess.run([sys.executable, "-m", "dvc", "repro", "-q"], cwd=tiny_study, env=env,
                   check=True, capture_output=True)
    names = lockcheck.dvc_stage_names(tiny_study)
    assert names == ["make"]
    assert lockcheck.stale_stages(tiny_study, names) == {}
    (tiny_study / "make.py").write_text(STAGE + "# edited\n")
    assert lockcheck.stale_stages(tiny_study, names) == {
        "make": ["make.py: changed since the run (md5 differs)"]}
    (tiny_study / "make.py").write_text(STAGE)
    text = (tiny_study / "params.yaml").read_text().replace("proxy: 0.5", "proxy: 0.6")
    (tiny_study / "params.yaml").write_text(text)
    assert lockcheck.stale_stages(tiny_study, names) == {
        "make": ["params.yaml:scale: parameter changed since the run"]}
    (tiny_study / "params.yaml").write_text(text.replace("proxy: 0.6", "proxy: 0.5"))
    metrics = tiny_study / "results" / "metrics" / "xnli-salt-0.json"
    metrics.write_text("{}")
    assert lockcheck.stale_stages(tiny_study, names) == {}  # folder outs are DVC's to hash
    assert lockcheck.stale_stages(tiny_study, [*names, "other"]) == {
        "other": ["in dvc.yaml but never run (no record in dvc.lock)"]}
    # a record left in dvc.lock by a renamed stage describes nothing current
    assert lockcheck.stale_stages(tiny_study, []) == {
        "make": ["in dvc.lock but no stage of dvc.yaml (renamed or removed): delete its record "
                 "from dvc.lock"]}


def test_lockcheck_reads_floats_as_dvc_writes_them(tmp_path):
    """DVC writes YAML 1.2 (`2e-05` is a float); a YAML 1.1 reader would call it changed."""
    (tmp_path / "params.yaml").write_text("lr: 0.00002\n")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages:\n  t:\n    cmd: x\n    params:\n"
                                       "      params.yaml:\n        lr: 2e-05\n")
    assert lockcheck.stale_stages(tmp_path) == {}


@pytest.mark.slow
def test_dry_runs_on_a_fresh_clone(tmp_path):
    """`dvc repro --dry` on a fresh clone hits DVC bug #9818 (the run cache hashes missing
    dependencies); with --force the dry run lists every stage, as a fresh clone would run them."""
    root = repository_root()
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
    env = {**os.environ, **GIT_ENV}
    dvc = [sys.executable, "-m", "dvc"]
    done = subprocess.run([*dvc, "repro", "--dry", "--force"], cwd=clone, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "python -m salt prepare" in done.stdout and "python -m claims audit" in done.stdout
    done = subprocess.run([*dvc, "exp", "run", "--dry", "--force", "-S", "profile=paper",
                           "-S", "seeds=[0,1,2,3,4]"], cwd=clone, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert shutil.which("git") and not (clone / "work").exists()
