"""Provenance: +dirty only for modified source or params, never for what the pipeline writes."""

from __future__ import annotations

import subprocess

import pytest

from salt import provenance as P


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"})


@pytest.fixture()
def repo(tmp_path):
    (tmp_path / "salt").mkdir()
    (tmp_path / "salt" / "x.py").write_text("a = 1\n")
    (tmp_path / "params.yaml").write_text("profile: smoke\n")
    for out in ("dvc.lock", "results/metrics/m.json", "reports/claims.md", "work/data/d.json",
                ".dvc/config"):
        (tmp_path / out).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / out).write_text("old\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "init")
    return tmp_path


def test_clean_tree_is_not_dirty(repo):
    assert not P.git_commit(repo).endswith("+dirty") and len(P.git_commit(repo)) == 40


def test_pipeline_outputs_do_not_make_it_dirty(repo):
    for out in ("dvc.lock", "results/metrics/m.json", "reports/claims.md", "work/data/d.json",
                ".dvc/config"):
        (repo / out).write_text("rewritten by dvc repro\n")
    assert not P.git_commit(repo).endswith("+dirty")


@pytest.mark.parametrize("changed", ["salt/x.py", "params.yaml"])
def test_modified_source_or_params_is_dirty(repo, changed):
    (repo / changed).write_text("changed\n")
    assert P.git_commit(repo).endswith("+dirty")


def test_outside_git_is_unknown(tmp_path):
    assert P.git_commit(tmp_path) == "unknown"
