"""dvc.yaml tells the truth: every stage lists as ``deps`` the package files its command imports
(the import closure within ``salt/`` and ``claims/``, computed here with ``ast``) and as
``params`` exactly the groups its config reads (``salt.stages.<stage>.READS``)."""

from __future__ import annotations

import argparse
import ast
import importlib
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from salt.config import Params, load_params
from salt.stages import STAGES

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("salt", "claims")
# dvc.yaml stage -> (module files its command starts from, salt stage module or None)
ENTRY = {
    **{name: (["salt/__main__.py", f"salt/stages/{name}.py"], name)
       for name in ("prepare", "model", "vocab", "mlm")},
    "codeswitch": (["salt/__main__.py", "salt/stages/codeswitch.py"], "codeswitch"),
    "train_baseline": (["salt/__main__.py", "salt/stages/train.py"], "train"),
    "train_salt": (["salt/__main__.py", "salt/stages/train.py"], "train"),
    "evaluate_baseline": (["salt/__main__.py", "salt/stages/evaluate.py"], "evaluate"),
    "evaluate_salt": (["salt/__main__.py", "salt/stages/evaluate.py"], "evaluate"),
    "properties": (["claims/__main__.py"], None),
    "claims": (["claims/__main__.py"], None),
}


def _module_file(name: str, root: Path) -> Path | None:
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return None
    base = root.joinpath(*parts)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _package_of(path: Path, root: Path) -> str:
    """The package a file belongs to (what a relative import starts from)."""
    return ".".join(path.relative_to(root).parts[:-1])


def imported_modules(path: Path, root: Path) -> set[str]:
    """Dotted names of every package module ``path`` imports, anywhere in the file (module
    level or inside functions); ``from a import b`` also yields ``a.b`` (a submodule or not)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = _package_of(path, root).split(".")
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([node.module] if node.module
                                                                   else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] in PACKAGES}


def import_closure(starts: list[str], root: Path = ROOT) -> set[str]:
    """Package files (relative paths) executed when ``starts`` run: their imports, transitively,
    with every parent package's ``__init__.py``."""
    todo = [root / s for s in starts]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        rel = path.relative_to(root)
        for i in range(1, len(rel.parts)):  # parent packages run their __init__ first
            init = root.joinpath(*rel.parts[:i], "__init__.py")
            if init.is_file():
                todo.append(init)
        for name in imported_modules(path, root):
            found = _module_file(name, root)
            if found is not None:
                todo.append(found)
    return {str(p.relative_to(root)) for p in seen}


def _dvc() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _code_deps(stage: dict) -> set[str]:
    deps = stage.get("deps", []) or stage.get("do", {}).get("deps", [])
    return {d for d in deps if d.split("/")[0] in PACKAGES and d.endswith(".py")}


def _params(stage: dict) -> set[str]:
    return set(stage.get("params", []) or stage.get("do", {}).get("params", []))


def test_every_stage_is_checked():
    assert set(_dvc()) == set(ENTRY)


@pytest.mark.parametrize("name", sorted(ENTRY))
def test_deps_are_the_import_closure(name):
    starts, _ = ENTRY[name]
    closure = import_closure(starts)
    deps = _code_deps(_dvc()[name])
    assert not closure - deps, f"dvc.yaml stage {name} misses {sorted(closure - deps)}"
    assert not deps - closure, f"dvc.yaml stage {name} lists code it never imports: " \
                               f"{sorted(deps - closure)}"


@pytest.mark.parametrize("name", sorted(ENTRY))
def test_params_are_the_groups_the_config_reads(name):
    _, module = ENTRY[name]
    listed = _params(_dvc()[name])
    if module is None:
        assert not listed, f"{name} reads no params.yaml group but lists {sorted(listed)}"
        return
    reads = set(importlib.import_module(f"salt.stages.{module}").READS)
    assert listed == reads, f"dvc.yaml stage {name}: params {sorted(listed)} but the stage " \
                            f"config reads {sorted(reads)}"


def test_every_salt_stage_has_a_dvc_stage():
    used = {module for _, module in ENTRY.values() if module}
    assert used == set(STAGES)


def test_closure_sees_function_level_and_relative_imports(tmp_path):
    """The checker itself: an import inside a function and a relative import both count, so a
    dvc.yaml missing such a file fails."""
    pkg = tmp_path / "salt"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from salt import b\n")
    (pkg / "b.py").write_text("from . import c\n")
    (pkg / "c.py").write_text("import os\n")
    (pkg / "d.py").write_text("")
    assert import_closure(["salt/a.py"], tmp_path) == {
        "salt/__init__.py", "salt/a.py", "salt/b.py", "salt/c.py"}


def test_a_missing_dep_fails(monkeypatch):
    """The graph check fails when dvc.yaml leaves out a file the stage imports."""
    stage = dict(_dvc()["vocab"])
    stage["deps"] = [d for d in stage["deps"] if d != "salt/vocab.py"]
    closure = import_closure(ENTRY["vocab"][0])
    assert "salt/vocab.py" in closure - _code_deps(stage)


@pytest.mark.parametrize("stage", STAGES)
def test_config_reads_exactly_the_listed_groups(stage, monkeypatch):
    """What ``READS`` (and so dvc.yaml) says is what building the config touches."""
    module = importlib.import_module(f"salt.stages.{stage}")
    params = replace(load_params(ROOT / "params.yaml", "smoke"), seeds=(0, 1))  # smoke: 2 seeds
    seen: set[str] = set()
    entry = Params.entry

    def spy(self, group, profile=None):
        seen.add(group)
        return entry(self, group, profile)

    monkeypatch.setattr(Params, "entry", spy)
    module.configure(params, argparse.Namespace(task="xnli", system="salt", seed=0))
    assert seen == set(module.READS) - {"profile", "tasks", "seeds"}
