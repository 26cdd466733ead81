"""Property checks C2-C8: each holds on the real implementation (through the CLI and run_all, whose
file ``load_properties`` must accept) and each deliberately broken variant makes its check fail,
with evidence naming the violated property."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from claims import properties as P
from claims.__main__ import main
from claims.results import load_properties
from salt import mixup
from salt import train as train_mod
from salt.codeswitch import read_muse
from salt.models import load_masked_lm


@pytest.fixture(scope="module")
def bench(data_dir) -> P.Bench:
    return P.get_bench(data_dir=data_dir)


@pytest.fixture(scope="module")
def outcomes(bench, tmp_path_factory) -> tuple[Path, dict]:
    """``python -m claims properties`` once for the module (reuses the cached bench)."""
    out = tmp_path_factory.mktemp("props") / "properties.json"
    assert main(["properties", "--out", str(out), "--seed", "0"]) == 0
    return out, json.loads(out.read_text())


def _fails(result: dict, *needles: str) -> None:
    assert result["verdict"] == "fails", result["evidence"]
    for needle in needles:
        assert needle in result["evidence"], (needle, result["evidence"])


# ----------------------------------------------------------------------------- real implementation


def test_every_check_holds_on_the_real_implementation(outcomes) -> None:
    _, obj = outcomes
    assert sorted(obj) == sorted(P.CHECKS)
    for cid, entry in obj.items():
        assert entry["verdict"] == "holds", (cid, entry["evidence"])
        assert entry["check"] == f"claims.properties.check_{cid.lower()}"
        assert entry["hypothesis"] and all(h["database"] is None for h in entry["hypothesis"])
        # the file is a pure function of code and seed: no run times in it
        assert "runtime_s" not in json.dumps(entry)


def test_run_all_file_is_accepted_by_load_properties(outcomes) -> None:
    path, obj = outcomes
    loaded = load_properties(path)
    assert loaded == {cid: {"verdict": e["verdict"], "evidence": e["evidence"],
                            "ran_on": e["ran_on"]} for cid, e in obj.items()}
    assert all("tiny random BERT" in e["ran_on"]["bench"]["model"] for e in obj.values())
    assert "written" in obj["C3"]["ran_on"] and "written" in obj["C4"]["ran_on"]
    assert "unverified" in loaded["C5"]["evidence"] or "NOT verified" in loaded["C5"]["evidence"]
    assert "measured elsewhere" in loaded["C2"]["evidence"]


def test_checks_are_reproducible(bench) -> None:
    def outcome(res: dict) -> tuple[str, str]:
        return res["verdict"], res["evidence"]  # details also carry wall times

    broken = P.MixupImpl(sample_r=_wide_r)
    assert outcome(P.check_c7(broken)) == outcome(P.check_c7(broken))
    assert outcome(P.check_c3(bench=bench, max_examples=10)) == outcome(
        P.check_c3(bench=bench, max_examples=10))


# ----------------------------------------------------------------------------- C7


def _scalar_r(b, t, h, cfg, g):
    return torch.rand(b, 1, 1, generator=g).expand(b, 1, h)


def _scalar_r_shape(b, t, h, cfg, g):
    return torch.rand(b, 1, 1, generator=g)


def _wide_r(b, t, h, cfg, g):  # r in [-1, 2]
    return mixup.sample_r(b, t, h, cfg, g) * 3 - 1


def _swapped(h_s, h_t, r):
    return (1 - r) * h_s + r * h_t


def _beta_swapped(b, t, h, cfg, g):
    return mixup.sample_r(b, t, h, replace(cfg, alpha=cfg.beta, beta=cfg.alpha), g)


def _squared(b, t, h, cfg, g):  # in [0, 1], a vector, fresh: only the distribution is wrong
    return mixup.sample_r(b, t, h, cfg, g) ** 2


@pytest.mark.parametrize(("impl", "needle"), [
    (P.MixupImpl(sample_r=_beta_swapped), "Beta(2.0, 5.0) rejected by a KS test"),
    (P.MixupImpl(sample_r=_squared), "U[0, 1] rejected by a KS test"),
], ids=["beta-swapped", "squared"])
def test_c7_rejects_r_from_another_distribution(impl, needle) -> None:
    _fails(P.check_c7(impl), "C7 VIOLATED", "does not follow its configured distribution", needle)


@pytest.mark.parametrize(("impl", "needle"), [
    (P.MixupImpl(sample_r=_scalar_r), "not a vector over the hidden dimension"),
    (P.MixupImpl(sample_r=_scalar_r_shape), "not a vector over the hidden dimension"),
    (P.MixupImpl(sample_r=_wide_r), "r outside [0, 1]"),
    (P.MixupImpl(mix_embeddings=_swapped), "!= r*h_s + (1-r)*h_t"),
], ids=["scalar", "scalar-shape", "outside-0-1", "swapped-weights"])
def test_c7_rejects_broken_mixup(impl, needle) -> None:
    _fails(P.check_c7(impl), "C7 VIOLATED", needle, "counterexample")


# ----------------------------------------------------------------------------- C8


def _same_generator_every_step(seed, step, stream=0):
    return mixup.step_generator(seed, 0, stream)


def _shared_by_batch(b, t, h, cfg, g):
    return mixup.sample_r(1, t, h, cfg, g).expand(b, -1, -1).clone()


@pytest.mark.parametrize(("impl", "needle"), [
    (P.MixupImpl(step_generator=_same_generator_every_step), "not drawn anew at each step"),
    (P.MixupImpl(sample_r=_shared_by_batch), "not drawn per instance"),
], ids=["fixed-across-steps", "shared-in-batch"])
def test_c8_rejects_stale_or_shared_r(bench, impl, needle) -> None:
    _fails(P.check_c8(impl, bench=bench), "C8 VIOLATED", needle)


def test_c8_restores_the_trainer(bench) -> None:
    P.check_c8(P.MixupImpl(sample_r=_shared_by_batch), bench=bench, max_examples=2)
    assert train_mod.sample_r is mixup.sample_r
    assert train_mod.step_generator is mixup.step_generator
    assert train_mod.mixed_input_embeddings is mixup.mixed_input_embeddings


# ----------------------------------------------------------------------------- C6


def _loss_ignoring_cs(model, embedding, batch, config, r):
    return train_mod.salt_loss(model, embedding, dict(batch, cs_input_ids=batch["input_ids"]),
                               config, r)


def test_c6_rejects_a_loss_that_ignores_code_switched_ids(bench) -> None:
    _fails(P.check_c6(P.MixupImpl(salt_loss=_loss_ignoring_cs), bench=bench),
           "C6 VIOLATED", "does not consume the code-switched ids")


# ----------------------------------------------------------------------------- C3, C4


def _leaky(model, tok, enc, vocabs, cfg):
    """Lets English tokens through: every target set also admits the source language's ids."""
    src = vocabs.entries[vocabs.source_lang]
    entries = {lang: (e if lang == vocabs.source_lang else {**e, **src})
               for lang, e in vocabs.entries.items()}
    return P.default_code_switch(model, tok, enc, replace(vocabs, entries=entries), cfg)


def _threshold_ignored(model, tok, enc, vocabs, cfg):
    return P.default_code_switch(model, tok, enc, vocabs, replace(cfg, threshold=0.0))


def test_c3_rejects_non_target_tokens(bench) -> None:
    _fails(P.check_c3(_leaky, bench=bench), "C3 VIOLATED", "is not in the target language")


def test_c4_rejects_an_ignored_threshold(bench) -> None:
    _fails(P.check_c4(_threshold_ignored, bench=bench), "C4 VIOLATED", "below the threshold")


# ----------------------------------------------------------------------------- C5


def _synonyms_on_translation_threshold(model, tok, enc, vocabs, cfg):
    return P.default_code_switch(model, tok, enc, vocabs,
                                 replace(cfg, synonym_threshold=cfg.threshold))


def _synonyms_always_on(model, tok, enc, vocabs, cfg):
    return P.default_code_switch(model, tok, enc, vocabs,
                                 replace(cfg, synonyms=True, synonym_threshold=0.0))


def test_c5_rejects_a_shared_threshold_and_synonyms_when_off(bench) -> None:
    shared = P.check_c5(_synonyms_on_translation_threshold, bench=bench)
    _fails(shared, "C5 VIOLATED")  # caught by completeness below the cap or by the probe
    assert ("left unchanged although the English-set synonym" in shared["evidence"]
            or "synonym threshold is not its own" in shared["evidence"]), shared["evidence"]
    _fails(P.check_c5(_synonyms_always_on, bench=bench), "C5 VIOLATED", "synonym")


# ----------------------------------------------------------------------------- C2


def test_c2_rejects_a_dictionary_and_a_foreign_head(bench) -> None:
    def with_dictionary(model, tok, enc, vocabs, cfg):
        read_muse(bench.data_dir / "muse" / "en-fr.dict")
        return P.default_code_switch(model, tok, enc, vocabs, cfg)

    fixed = load_masked_lm(bench.model_dir).eval()

    def fixed_model(model, tok, enc, vocabs, cfg):  # ignores the model it is given
        return P.default_code_switch(fixed, tok, enc, vocabs, cfg)

    _fails(P.check_c2(with_dictionary, bench=bench), "C2 VIOLATED", "read a dictionary",
           "en-fr.dict")
    _fails(P.check_c2(fixed_model, bench=bench), "C2 VIOLATED", "model's own MLM head")


# ----------------------------------------------------------------------------- issue 16 gaps


def test_evidence_tells_close_numbers_apart() -> None:
    from claims.bench import fmt

    a, b = fmt(1.0987712, 1.0987714)
    assert a != b and float(a) != float(b)
    assert fmt(0.25, 0.25) == ["0.25", "0.25"]


def test_a_crashing_check_is_an_error_not_a_verdict(bench) -> None:
    def crashes(model, tok, enc, vocabs, cfg):
        return [{**r, "lang": None} for r in P.default_code_switch(model, tok, enc, vocabs, cfg)
                ] if enc[0].uid == "never" else {}["missing"]

    res = P.check_c3(crashes, bench=bench, max_examples=5)
    assert res["verdict"] == "error", res["evidence"]
    assert "not decided: the check crashed" in res["evidence"] and "KeyError" in res["evidence"]


_REAL_PICK = train_mod.pick_copies


def _another_instance(items, width, pad_id, gen):
    """Each source paired with the next instance's code-switched copy."""
    return _REAL_PICK(list(items[1:]) + list(items[:1]), width, pad_id, gen)


def _shifted_copy(items, width, pad_id, gen):
    """Each source paired with its own copy shifted by one token."""
    return _REAL_PICK(items, width, pad_id, gen).roll(1, dims=1)


@pytest.mark.parametrize(("pick", "needle"), [
    (_another_instance, "another instance"),
    (_shifted_copy, "its own copy shifted by one token"),
], ids=["another-instance", "shifted-by-one"])
def test_c6_rejects_mixing_with_a_copy_that_is_not_its_own(bench, monkeypatch, pick,
                                                           needle) -> None:
    monkeypatch.setattr(train_mod, "pick_copies", pick)
    res = P.check_c6(bench=bench, max_examples=4)
    _fails(res, "C6 VIOLATED", "own aligned copy", needle)


def test_c3_rejects_special_tokens_as_candidates(bench, monkeypatch) -> None:
    from salt.codeswitch import assemble as where  # the candidates are looked up there
    from salt.codeswitch import candidate_positions as real

    monkeypatch.setattr(where, "candidate_positions",
                        lambda pieces, is_special, scheme, mode="single_word":
                        real(pieces, [False] * len(is_special), scheme, mode))
    _fails(P.check_c3(bench=bench, max_examples=20), "C3 VIOLATED", "special token")


def test_c3_rejects_substitutions_outside_the_candidates(bench) -> None:
    def off_candidates(model, tok, enc, vocabs, cfg):
        recs = P.default_code_switch(model, tok, enc, vocabs, cfg)
        for r in recs:  # the record forgets where it may switch
            r["candidates"] = [p for p in r["candidates"]
                               if p not in {s[0] for s in r["substitutions"]}]
        return recs

    _fails(P.check_c3(off_candidates, bench=bench, max_examples=20), "C3 VIOLATED",
           "not a candidate position")


def test_c3_rejects_wrong_labels_in_the_records(bench) -> None:
    def wrong_label(model, tok, enc, vocabs, cfg):
        return [{**r, "label": (r["label"] + 1) % 3}
                for r in P.default_code_switch(model, tok, enc, vocabs, cfg)]

    _fails(P.check_c3(wrong_label, bench=bench, max_examples=5), "C3 VIOLATED",
           "the source's label")


def test_c5_rejects_synonyms_forced_on_at_the_configured_threshold(bench) -> None:
    def forced(model, tok, enc, vocabs, cfg):
        return P.default_code_switch(model, tok, enc, vocabs, replace(cfg, synonyms=True))

    _fails(P.check_c5(forced, bench=bench), "C5 VIOLATED", "with synonyms off")


# ----------------------------------------------------------------------------- written data


def _work_dir(bench, root: Path, cfg) -> Path:
    from salt.codeswitch import code_switch

    work = root / "work"
    (work / "mlm").mkdir(parents=True)
    (work / "mlm" / "mlm.json").write_text(json.dumps({"model_dir": "model"}))
    import shutil

    shutil.copytree(bench.model_dir, root / "model")
    bench.vocabs.save(work / "vocab" / "vocab.json")
    (work / "data" / "xnli").mkdir(parents=True)
    (work / "data" / "xnli" / "train-en.jsonl").write_text("".join(
        json.dumps({"uid": e.uid, "text_a": "a", "text_b": "b", "label": e.label}) + "\n"
        for e in bench.pairs))
    (work / "codeswitch").mkdir()
    code_switch(bench.mlm, bench.tokenizer, bench.pairs[:8], bench.vocabs, cfg,
                out_path=work / "codeswitch" / "xnli.jsonl", progress=False)
    return work


def _rewrite(path: Path, change) -> None:
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    for r in rows:
        change(r)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_written_data_checks_hold_and_catch_bad_records(bench, tmp_path, monkeypatch) -> None:
    from claims.checks_written import check_written
    from salt.codeswitch import CodeSwitchConfig

    cfg = CodeSwitchConfig(threshold=0.0, languages=("fr", "de"), max_ratio=0.5)
    work = _work_dir(bench, tmp_path, cfg)
    ok = check_written(work)
    assert ok["verdict"] == "holds", ok["evidence"]
    assert ok["ran_on"]["data"] == ["work/codeswitch/xnli.jsonl"] and ok["ran_on"]["model"] == "model"
    assert check_written(tmp_path / "nothing") is None
    monkeypatch.chdir(tmp_path.parent)  # a folder named from above it, as `--work study/work`
    named = check_written(Path(tmp_path.name) / "work")["ran_on"]
    assert named["data"] == [f"{tmp_path.name}/work/codeswitch/xnli.jsonl"]
    assert named["model"] == f"{tmp_path.name}/model"

    records = work / "codeswitch" / "xnli.jsonl"
    original = records.read_text()
    _rewrite(records, lambda r: r.update(label=(r["label"] + 1) % 3))
    bad = check_written(work)
    assert bad["verdict"] == "fails" and "the source's label" in bad["evidence"]

    records.write_text(original)
    en = bench.vocabs.ids("en").tolist()
    fr = set(bench.vocabs.ids("fr").tolist())
    outsider = next(i for i in en if i not in fr)

    def leak(r):
        for s in r["substitutions"]:
            s[2] = outsider
            r["cs_input_ids"][s[0]] = outsider

    _rewrite(records, leak)
    bad = check_written(work)
    assert bad["verdict"] == "fails" and "(C3)" in bad["evidence"], bad["evidence"]

    records.write_text(original)

    def below_threshold(r):
        for s in r["substitutions"]:
            s[3] = -1.0

    _rewrite(records, below_threshold)
    bad = check_written(work)
    assert bad["verdict"] == "fails" and "(C4)" in bad["evidence"], bad["evidence"]


def test_c5_rejects_a_synonym_choice_that_does_not_exclude_the_original(bench, monkeypatch) -> None:
    from salt.codeswitch import assemble, fast, reference

    real = assemble.best
    for where in (fast, reference):  # both paths look the arg-max up from assemble
        monkeypatch.setattr(where, "best", lambda probs, ids, exclude=None: real(probs, ids, None))
    _fails(P.check_c5(bench=bench, max_examples=10), "C5 VIOLATED", "the original is not excluded")


def test_properties_cli_refuses_a_named_work_folder_with_nothing_to_check(tmp_path, capsys) -> None:
    (tmp_path / "study" / "work").mkdir(parents=True)
    out = tmp_path / "properties.json"
    assert main(["properties", "--out", str(out), "--work", str(tmp_path / "study" / "work")]) == 2
    err = capsys.readouterr().err
    assert "--work" in err and "study/work/codeswitch/*.jsonl" in err and not out.exists()
