"""Data layer: strict parsing, clear errors, deterministic stratified subsets, hub path."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import hub_copy

from salt import data as D
from salt.tasks import PAWSX, XNLI


def _write(root, task, split, lang, text):
    path = root / task / f"{split}-{lang}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_full_local_data_loads_in_one_call(data_dir):
    for spec in (XNLI, PAWSX):
        for lang in spec.languages:
            rows = D.load_local(spec.name, "test", lang, data_dir)
            assert len(rows) == (5010 if spec is XNLI else 2000)
    train = D.load_local("xnli", "train", "en", data_dir)
    assert len(train) == 29506
    assert train[0].uid == "xnli/train-en:1"


def test_leading_quote_is_text_not_quoting(tmp_path):
    _write(tmp_path, "xnli", "dev", "en", '"Hi," he said.\tHe spoke.\tentailment\n')
    [ex] = D.load_local("xnli", "dev", "en", tmp_path)
    assert ex.text_a == '"Hi," he said.' and ex.label == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a\tb\tentailment\nonly two\tcolumns\n", ":2: expected 3 tab-separated columns, found 2"),
        ("a\tb\tentailment\na\tb\tmaybe\n", ":2: unknown label 'maybe'"),
        ("a\t \tneutral\n", ":1: empty text_b"),
        ("\tb\tneutral\n", ":1: empty text_a"),
        ("a\tb\tneutral\textra\n", ":1: expected 3 tab-separated columns, found 4"),
        ("", ": no rows"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, content, message):
    path = _write(tmp_path, "xnli", "dev", "fr", content)
    with pytest.raises(D.DataError) as err:
        D.load_local("xnli", "dev", "fr", tmp_path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_invalid_utf8_is_reported(tmp_path):
    path = tmp_path / "xnli" / "dev-fr.tsv"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"caf\xe9\tb\tneutral\n")
    with pytest.raises(D.DataError, match="not valid UTF-8"):
        D.load_local("xnli", "dev", "fr", tmp_path)


def test_missing_file_and_unknown_or_duplicate_language(tmp_path):
    with pytest.raises(D.DataError, match=r"dev-de\.tsv: missing file"):
        D.load_local("xnli", "dev", "de", tmp_path)
    with pytest.raises(D.DataError, match="unknown language 'xx'"):
        D.load_local("xnli", "dev", "xx", tmp_path)
    with pytest.raises(D.DataError, match="duplicate language 'fr'"):
        D.check_languages(XNLI, ["fr", "de", "fr"], key="data.languages.xnli")


def test_data_dir_env_wins_then_folder_beside_repository(tmp_path, monkeypatch):
    repo = tmp_path / "clone"
    (repo / "sub").mkdir(parents=True)
    (repo / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(repo / "sub")  # any folder inside the repository finds its root
    monkeypatch.setattr(D, "__file__", str(repo / "salt" / "data.py"))
    monkeypatch.delenv(D.DATA_DIR_ENV, raising=False)
    with pytest.raises(D.DataError) as err:
        D.data_dir()
    beside = tmp_path / "shared" / "data"
    assert "SALT_DATA_DIR" in str(err.value) and str(beside) in str(err.value)
    beside.mkdir(parents=True)
    assert D.data_dir() == beside
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.setenv(D.DATA_DIR_ENV, str(other))
    assert D.data_dir() == other
    monkeypatch.setenv(D.DATA_DIR_ENV, str(tmp_path / "nope"))
    with pytest.raises(D.DataError, match=r"SALT_DATA_DIR=.*nope: not a directory"):
        D.data_dir()


def test_dvc_stage_finds_data_beside_repository(tmp_path, monkeypatch):
    """What `dvc repro` does: a process started in the repository root with no SALT_DATA_DIR."""
    import subprocess
    import sys
    from pathlib import Path

    repo = tmp_path / "clone"
    repo.mkdir()
    (repo / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "shared" / "data").mkdir(parents=True)
    env = {k: v for k, v in __import__("os").environ.items() if k != D.DATA_DIR_ENV}
    env["PYTHONPATH"] = str(Path(D.__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", "from salt.data import data_dir; print(data_dir())"],
                         cwd=repo, env=env, capture_output=True, text=True, check=True).stdout
    assert Path(out.strip()) == tmp_path / "shared" / "data"


def test_byte_order_mark_is_removed_at_start_and_refused_at_a_line_start(tmp_path):
    _write(tmp_path, "xnli", "dev", "en", "\ufeffHello.\tHi.\tneutral\nA\tB\tneutral\n")
    rows = D.load_local("xnli", "dev", "en", tmp_path)
    assert rows[0].text_a == "Hello." and rows[1].text_a == "A"
    path = _write(tmp_path, "xnli", "dev", "fr", "a\tb\tneutral\n\ufeffc\td\tneutral\n")
    with pytest.raises(D.DataError) as err:
        D.load_local("xnli", "dev", "fr", tmp_path)
    assert f"{path}:2: byte-order mark" in str(err.value)
    # inside text U+FEFF is a zero-width no-break space (real XNLI Hindi has it): text
    _write(tmp_path, "xnli", "dev", "hi", "a\ufeffb\tc\tneutral\n")
    assert D.load_local("xnli", "dev", "hi", tmp_path)[0].text_a == "a\ufeffb"


def test_row_count_mismatch_names_both_files(tmp_path):
    _write(tmp_path, "xnli", "test", "en", "a\tb\tneutral\nc\td\tneutral\n")
    _write(tmp_path, "xnli", "test", "vi", "a\tb\tneutral\n")
    per = {lang: D.load_local("xnli", "test", lang, tmp_path) for lang in ("en", "vi")}
    with pytest.raises(D.DataError) as err:
        D.parallel_subset(per, 1, seed=0)
    msg = str(err.value)
    assert "vi has 1 rows (xnli/test-vi.tsv) but en has 2 (xnli/test-en.tsv)" in msg
    sources = {lang: str(D.split_path(tmp_path, "xnli", "test", lang)) for lang in per}
    with pytest.raises(D.DataError, match=str(tmp_path / "xnli" / "test-vi.tsv")):
        D.parallel_subset(per, 1, seed=0, sources=sources)


def test_local_data_id_has_no_path_and_tracks_content(tmp_path):
    a = _write(tmp_path / "one", "xnli", "dev", "en", "a\tb\tneutral\n")
    b = _write(tmp_path / "two", "xnli", "dev", "en", "a\tb\tneutral\n")
    id_a, id_b = D.local_data_id([a], tmp_path / "one"), D.local_data_id([b], tmp_path / "two")
    assert id_a == id_b and id_a.startswith("local:") and str(tmp_path) not in id_a
    # same file name under another task is another file
    c = _write(tmp_path / "three", "pawsx", "dev", "en", "a\tb\tneutral\n")
    assert D.files_digest([c]) == D.files_digest([a])  # by file name alone they collide
    assert D.files_digest([c], tmp_path / "three") != D.files_digest([a], tmp_path / "one")
    b.write_text("a\tb\tentailment\n", encoding="utf-8")
    assert D.local_data_id([b], tmp_path / "two") != id_a


def test_unknown_source_never_falls_back(tmp_path):
    with pytest.raises(D.DataError, match="unknown source 'web'"):
        D.load_split("xnli", "dev", "en", source="web", root=tmp_path)


def _examples(labels):
    return [D.Example(f"xnli/dev-en:{i + 1}", "a", "b", lab) for i, lab in enumerate(labels)]


def test_stratified_subset_keeps_shares_and_is_deterministic():
    rows = _examples([0] * 60 + [1] * 30 + [2] * 10)
    a = D.stratified_subset(rows, 20, seed=3)
    assert Counter(e.label for e in a) == {0: 12, 1: 6, 2: 2}
    assert a == D.stratified_subset(rows, 20, seed=3)
    assert a != D.stratified_subset(rows, 20, seed=4)
    assert [e.line for e in a] == sorted(e.line for e in a)
    assert D.stratified_subset(rows, None, 0) == rows


def test_largest_remainder_rounding():
    rows = _examples([0] * 5 + [1] * 5 + [2] * 5)
    assert Counter(e.label for e in D.stratified_subset(rows, 4, 0)) == {0: 2, 1: 1, 2: 1}


def test_parallel_subset_picks_same_lines(data_dir):
    per = {lang: D.load_local("xnli", "test", lang, data_dir) for lang in ("en", "sw", "ur")}
    sub = D.parallel_subset(per, 30, seed=0)
    lines = [e.line for e in sub["en"]]
    assert len(lines) == 30
    for lang in ("sw", "ur"):
        assert [e.line for e in sub[lang]] == lines
        assert [e.label for e in sub[lang]] == [e.label for e in sub["en"]]
    with pytest.raises(D.DataError, match="row-parallel"):
        D.parallel_subset({"en": per["en"], "sw": per["sw"][:-1]}, 10, seed=0)


SHA = "0123456789abcdef0123456789abcdef01234567"


def _hub_loader(tmp_path, rows):
    """A loader with ``datasets.load_dataset``'s signature that reads local parquet files laid
    out like the hub dataset (config = language, field names and label ids as on the hub)."""
    import datasets

    calls = []

    def loader(path, name, split, revision=None):
        calls.append((path, name, split, revision))
        target = tmp_path / path / name / f"{split}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_dict(rows).to_parquet(str(target))
        return datasets.load_dataset("parquet", data_files={split: str(target)}, split=split,
                                     cache_dir=str(tmp_path / "cache"))

    return loader, calls


def test_hub_path_reads_hub_format(tmp_path):
    loader, calls = _hub_loader(tmp_path, {"premise": ["p1", "p2"], "hypothesis": ["h1", "h2"],
                                           "label": [2, 0]})
    rows = D.load_hub("xnli", "test", "fr", revision=SHA, loader=loader)
    assert calls == [("facebook/xnli", "fr", "test", SHA)]
    assert [(r.uid, r.text_a, r.label) for r in rows] == [
        ("xnli/test-fr:1", "p1", 2), ("xnli/test-fr:2", "p2", 0)]


def test_hub_bad_rows_are_named(tmp_path):
    loader, _ = _hub_loader(tmp_path, {"sentence1": ["a"], "sentence2": ["b"], "label": [5]})
    with pytest.raises(D.DataError, match=r"paws-x@0123456789ab/de/validation row 1: label 5 "):
        D.load_hub("pawsx", "dev", "de", revision=SHA, loader=loader)
    loader, _ = _hub_loader(tmp_path / "x", {"premise": ["a"], "label": [0]})
    with pytest.raises(D.DataError, match="row 1: missing field 'hypothesis'"):
        D.load_hub("xnli", "dev", "de", revision=SHA, loader=loader)


def test_hub_failure_is_an_error_not_a_fallback():
    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    with pytest.raises(D.DataError, match=r"hub:facebook/xnli@0123456789ab/en/train: .*ConnectionError"):
        D.load_hub("xnli", "train", "en", revision=SHA, loader=offline)


def test_real_hub_loader_offline_fails_clearly(monkeypatch):
    """The default loader is ``datasets.load_dataset``; offline with an empty cache it must
    raise a DataError naming the request rather than fall back to local files."""
    monkeypatch.delenv(D.HUB_MIRROR_ENV, raising=False)
    with pytest.raises(D.DataError, match=r"hub:facebook/xnli@0123456789ab/en/validation"):
        D.load_hub("xnli", "dev", "en", revision=SHA)


def test_hub_needs_a_pinned_commit_per_dataset():
    pins = {"facebook/xnli": SHA, "google-research-datasets/paws-x": None}
    assert D.resolve_hub_revision("facebook/xnli", pins) == SHA
    with pytest.raises(D.DataError, match=r"data\.hub_revision\.google-research-datasets/paws-x: "
                                          r"no pinned revision"):
        D.resolve_hub_revision("google-research-datasets/paws-x", pins)
    with pytest.raises(D.DataError, match="no pinned revision"):
        D.resolve_hub_revision("facebook/xnli", None)
    with pytest.raises(D.DataError, match="'main' is not a 40-hex commit sha"):
        D.resolve_hub_revision("facebook/xnli", {"facebook/xnli": "main"})
    with pytest.raises(D.DataError, match="no pinned revision"):
        D.load_hub("xnli", "test", "fr", revision=None, loader=lambda *a, **k: [])
    assert D.hub_data_id({"facebook/xnli": SHA}) == f"hub:facebook/xnli@{SHA}"


def test_committed_paper_profile_pins_or_names_each_hub_dataset():
    """params.yaml's paper profile reads the hub; each dataset is pinned to a sha or, where no
    sha could be verified, left empty so the run stops with the error above (never the head)."""
    import yaml

    from salt.data import repository_root

    paper = yaml.safe_load((repository_root() / "params.yaml").read_text())["data"]["paper"]
    pins = paper["hub_revision"]
    assert set(pins) == {XNLI.hub_id, PAWSX.hub_id}
    for hub_id, sha in pins.items():
        assert sha is None or D.resolve_hub_revision(hub_id, pins) == sha


def test_hub_mirror_goes_through_load_dataset_offline(tmp_path, monkeypatch):
    """No SALT_DATA_DIR, no network: the real ``datasets.load_dataset`` reads a hub-layout copy
    of the pinned commit; another commit is refused, not substituted."""
    monkeypatch.delenv(D.DATA_DIR_ENV, raising=False)
    rows = {"premise": ["Il pleut.", "Le chat dort."], "hypothesis": ["Il fait beau.", "Un chat."],
            "label": [2, 0]}
    hub_copy(tmp_path / "mirror", "facebook/xnli",
             {"fr": {"test": rows, "validation": rows}, "de": {"test": rows}}, sha=SHA)
    monkeypatch.setenv(D.HUB_MIRROR_ENV, str(tmp_path / "mirror"))
    got = D.load_split("xnli", "test", "fr", source="hub", revision={"facebook/xnli": SHA})
    assert [(e.uid, e.text_b, e.label) for e in got] == [
        ("xnli/test-fr:1", "Il fait beau.", 2), ("xnli/test-fr:2", "Un chat.", 0)]
    assert [e.text_a for e in D.load_hub("xnli", "test", "de", revision=SHA)] == rows["premise"]
    other = "f" * 40
    with pytest.raises(D.DataError, match="the hub mirror has no copy of this revision"):
        D.load_hub("xnli", "test", "fr", revision=other)


def test_shared_hub_mirror_fixture_loads_every_language(hub_mirror, monkeypatch):
    """The conftest mirror (for stage tests of the paper profile) goes through the hub path."""
    monkeypatch.setenv(D.HUB_MIRROR_ENV, str(hub_mirror["path"]))
    monkeypatch.delenv(D.DATA_DIR_ENV, raising=False)
    for spec in (XNLI, PAWSX):
        train = D.load_split(spec.name, "train", "en", "hub", revision=hub_mirror["revisions"])
        assert len(train) == 64 and train[0].uid == f"{spec.name}/train-en:1"
        for lang in spec.languages:
            rows = D.load_split(spec.name, "test", lang, "hub", revision=hub_mirror["revisions"])
            assert len(rows) == 64
