"""Property checks of the embedding mixup: C6 (consumes the code-switched copy, no mixing at
evaluation), C7 (formula, range and shape of r), C8 (r fresh per step and instance inside real
``salt.train.train`` runs) and the pairing check (each source mixed with its own, token-aligned
code-switched copy), all taking a ``MixupImpl`` so broken variants can be audited too."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st

from salt import mixup as mixup_mod
from salt import train as train_mod
from salt.models import load_classifier

from .bench import (
    ALPHA,
    NUM_LABELS,
    Bench,
    MixupImpl,
    Violation,
    checked,
    explore,
    fmt,
    get_bench,
    patched,
    quiet,
    require,
    verdict,
)

# ----------------------------------------------------------------------------- C7


@st.composite
def _c7_cases(draw) -> dict[str, Any]:
    b, t, h = draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 24))
    per_position = draw(st.booleans())
    dist = draw(st.sampled_from(["uniform", "beta"]))
    alpha = draw(st.floats(0.5, 5.0)) if dist == "beta" else 1.0
    beta = draw(st.floats(0.5, 5.0)) if dist == "beta" else 1.0
    rows = t if per_position else 1
    n = b * rows * h
    known = draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n))
    return {"B": b, "T": t, "H": h, "per_position": per_position, "distribution": dist,
            "alpha": alpha, "beta": beta, "seed": draw(st.integers(0, 2**31 - 1)),
            "step": draw(st.integers(0, 10**6)), "r_known": known}


def _spec_mix(r: np.ndarray, h_s: np.ndarray, h_t: np.ndarray) -> np.ndarray:
    """The seed's formula in float64: h = r * h_s + (1 - r) * h_t (r broadcast)."""
    return r * h_s + (1.0 - r) * h_t


def _compare(name: str, got: torch.Tensor, want: np.ndarray, formula: str) -> None:
    got_np = got.detach().double().numpy()
    require(got_np.shape == want.shape,
             f"{name} has shape {got_np.shape}, expected {want.shape}")
    err = np.abs(got_np - want)
    worst = int(err.argmax())
    require(bool(np.all(err <= 1e-5 + 1e-5 * np.abs(want))),
             f"{name} != {formula} elementwise: max abs error {err.flat[worst]:.3g} at index "
             f"{tuple(int(i) for i in np.unravel_index(worst, want.shape))}")


@checked
def check_c7(impl: MixupImpl | None = None, *, seed: int = 0, max_examples: int = 300,
             bench: Bench | None = None) -> dict[str, Any]:
    """C7: h = r*h_s + (1-r)*h_t elementwise, r_j in [0, 1], r a vector over the hidden
    dimension, shape (B, 1, H) by default ((B, T, H) per position). Needs no model."""
    impl = impl or MixupImpl()

    def prop(c: dict[str, Any]) -> None:
        b, t, h = c["B"], c["T"], c["H"]
        rows = t if c["per_position"] else 1
        cfg = mixup_mod.MixupConfig(c["distribution"], c["alpha"], c["beta"], c["per_position"])
        r = impl.sample_r(b, t, h, cfg, impl.step_generator(c["seed"], c["step"], 1))
        require(isinstance(r, torch.Tensor), f"sample_r returned {type(r).__name__}, not a tensor")
        want_shape = (b, rows, h)
        if tuple(r.shape) != want_shape:
            if r.dim() == 0 or (r.shape[-1] == 1 and h > 1):
                raise Violation(f"r is not a vector over the hidden dimension: shape "
                                f"{tuple(r.shape)}, expected {want_shape}")
            raise Violation(f"r has shape {tuple(r.shape)}, expected {want_shape}")
        require(bool(torch.isfinite(r).all()), "r has non-finite entries")
        lo, hi = float(r.min()), float(r.max())
        require(lo >= 0.0 and hi <= 1.0,
                "r outside [0, 1]: min {}, max {}".format(*fmt(lo, hi, 0.0, 1.0)[:2]))
        if h > 1:
            flat = r.reshape(-1, h)
            same = [i for i in range(flat.shape[0]) if bool((flat[i] == flat[i, 0]).all())]
            require(not same, f"r is not a vector over the hidden dimension: all {h} entries of "
                               f"row {same[:1]} equal {float(flat[same[0], 0]) if same else 0:.4g} "
                               "(a scalar per instance)")
        g = torch.Generator().manual_seed(c["seed"])
        h_s = torch.randn(b, t, h, generator=g)
        h_t = torch.randn(b, t, h, generator=g)
        known = torch.tensor(c["r_known"], dtype=torch.float32).reshape(want_shape)
        spec = "r*h_s + (1-r)*h_t"
        _compare("mix_embeddings(h_s, h_t, r) with a known r",
                 impl.mix_embeddings(h_s, h_t, known),
                 _spec_mix(known.double().numpy(), h_s.double().numpy(), h_t.double().numpy()),
                 spec)
        _compare("mix_embeddings(h_s, h_t, r) with the sampled r", impl.mix_embeddings(h_s, h_t, r),
                 _spec_mix(r.double().numpy(), h_s.double().numpy(), h_t.double().numpy()), spec)
        emb = torch.nn.Embedding(50, h)
        with torch.no_grad():
            emb.weight.copy_(torch.randn(50, h, generator=g))
        src = torch.randint(50, (b, t), generator=g)
        cs = torch.randint(50, (b, t), generator=g)
        w = emb.weight.detach().double().numpy()
        with torch.no_grad():
            got = impl.mixed_input_embeddings(emb, src, cs, known)
        _compare("mixed_input_embeddings(E, src, cs, r)", got,
                 _spec_mix(known.double().numpy(), w[src.numpy()], w[cs.numpy()]),
                 "r*E[src] + (1-r)*E[cs] (r*h_s + (1-r)*h_t on word embeddings)")

    run = explore("mixup formula, range and shape of r", prop, _c7_cases(), seed=seed,
                  max_examples=max_examples)
    default_shape = None
    if run.failure is None:  # the default configuration, spelled out
        r = impl.sample_r(3, 5, 8, mixup_mod.MixupConfig(), impl.step_generator(seed, 0, 1))
        default_shape = tuple(r.shape)
    extra = (None if default_shape in (None, (3, 1, 8))
             else f"default r shape {default_shape}, expected (B, 1, H) = (3, 1, 8)")
    dist = _distribution_probe(impl, seed) if run.failure is None and extra is None else {}
    rejected = [k for k, v in dist.items() if v["p"] < ALPHA]
    if rejected:
        extra = (f"r does not follow its configured distribution: {rejected[0]} rejected by a KS "
                 f"test (D={dist[rejected[0]]['D']:.4f}, p={dist[rejected[0]]['p']:.3g}, "
                 f"alpha {ALPHA}, n={DIST_N})")
    probes = "; ".join(f"{k}: KS p={v['p']:.3g}" for k, v in dist.items())
    return verdict(
        "C7", "the mixed embedding equals r*h_s + (1-r)*h_t elementwise (recomputed in float64 "
        "with known and with sampled r, also through the word-embedding lookup), every r_j is in "
        "[0, 1], r varies over the hidden dimension (a vector, not a scalar) and has shape "
        "(B, 1, H) by default, (B, T, H) per position, for uniform and Beta draws; "
        f"{DIST_N} draws of each configured distribution are not rejected by a KS test at "
        f"alpha {ALPHA} ({probes})",
        [run], None, extra_failure=extra, details={"default_shape": default_shape,
                                                   "distributions": dist})


DIST_N = 4096  # r entries drawn per distribution probe (C7)


def _distribution_probe(impl: MixupImpl, seed: int) -> dict[str, dict[str, float]]:
    """KS test of sampled r against its configured distribution (uniform and asymmetric Betas,
    so swapped Beta parameters show)."""
    from scipy import stats

    out = {}
    for k, cfg in enumerate((mixup_mod.MixupConfig(), mixup_mod.MixupConfig("beta", 2.0, 5.0),
                             mixup_mod.MixupConfig("beta", 0.5, 3.0))):
        r = impl.sample_r(64, 4, 64, cfg, impl.step_generator(seed, 10_000 + k, 1))
        values = r.reshape(-1).double().numpy()
        if cfg.distribution == "uniform":
            res, name = stats.kstest(values, "uniform"), "U[0, 1]"
        else:
            res = stats.kstest(values, "beta", args=(cfg.alpha, cfg.beta))
            name = f"Beta({cfg.alpha}, {cfg.beta})"
        out[name] = {"D": float(res.statistic), "p": float(res.pvalue)}
    return out


# ----------------------------------------------------------------------------- C8


def _train_cfg(**kw: Any) -> train_mod.TrainConfig:
    base = {"system": "salt", "epochs": 1, "checkpoint_every": 10**6, "warmup_ratio": 0.0}
    return train_mod.TrainConfig(**{**base, **kw})


def _train_recording(impl: MixupImpl, bench: Bench, items: Sequence[Any], config,
                     out_dir: Path) -> tuple[list[torch.Tensor], int]:
    """Run the real ``train()`` with impl's mixup functions patched into ``salt.train``;
    return the r consumed at every step (as passed to the mix) and the number of draws."""
    consumed: list[torch.Tensor] = []
    draws = [0]

    def sample_r(*a: Any, **k: Any) -> torch.Tensor:
        draws[0] += 1
        return impl.sample_r(*a, **k)

    def mixed(embedding, src_ids, cs_ids, r):
        consumed.append(r.detach().cpu().clone())
        return impl.mixed_input_embeddings(embedding, src_ids, cs_ids, r)

    with quiet(), patched(train_mod, sample_r=sample_r, step_generator=impl.step_generator,
                            mixed_input_embeddings=mixed):
        train_mod.train(bench.model_dir, items, out_dir, config, NUM_LABELS, pad_id=bench.pad_id)
    return consumed, draws[0]


@checked
def check_c8(impl: MixupImpl | None = None, *, seed: int = 0, max_examples: int = 20,
             bench: Bench | None = None) -> dict[str, Any]:
    """C8: r is drawn anew at every training step and for every instance, observed inside real
    ``salt.train.train`` runs (3-4 steps on the tiny model); the pooled draws are tested against
    their distribution (KS, alpha 0.01)."""
    impl = impl or MixupImpl()
    bench = bench or get_bench()
    hidden = bench.mlm.config.hidden_size
    pool: dict[tuple[int, int], torch.Tensor] = {}
    dist_cfg = _train_cfg().mixup

    @st.composite
    def cases(draw) -> dict[str, int]:
        return {"seed": draw(st.integers(0, 2**16)), "batch_size": draw(st.integers(2, 6)),
                "steps": draw(st.integers(3, 4))}

    def prop(c: dict[str, int]) -> None:
        bs, steps = c["batch_size"], c["steps"]
        items = bench.train_items[: bs * steps]
        with tempfile.TemporaryDirectory(prefix="salt-c8-") as tmp:
            rs, draws = _train_recording(impl, bench, items,
                                         _train_cfg(seed=c["seed"], batch_size=bs), Path(tmp))
        require(len(rs) == steps and draws == steps,
                 f"{steps} training steps consumed {len(rs)} r and drew r {draws} times "
                 "(expected one draw per step)")
        for s, r in enumerate(rs):
            require(tuple(r.shape) == (bs, 1, hidden),
                     f"step {s}: r has shape {tuple(r.shape)}, expected (B, 1, H) = "
                     f"{(bs, 1, hidden)} (one vector per instance)")
            require(float(r.min()) >= 0 and float(r.max()) <= 1,
                     "step {}: r outside [0, 1] ({}, {})".format(
                         s, *fmt(float(r.min()), float(r.max()), 0.0, 1.0)[:2]))
            flat = r.reshape(bs, -1)
            for i in range(bs):
                for j in range(i + 1, bs):
                    require(not torch.equal(flat[i], flat[j]),
                             f"r is not drawn per instance: instances {i} and {j} of the batch at "
                             f"step {s} share the same r")
        for s in range(steps):
            for s2 in range(s + 1, steps):
                a, b = rs[s].reshape(bs, -1), rs[s2].reshape(bs, -1)
                hits = [(i, j) for i in range(bs) for j in range(bs) if torch.equal(a[i], b[j])]
                require(not hits, f"r is not drawn anew at each step: step {s} instance "
                                   f"{hits[0][0] if hits else 0} and step {s2} instance "
                                   f"{hits[0][1] if hits else 0} got the same r")
        for s, r in enumerate(rs):
            key = (c["seed"], s)
            if key not in pool or pool[key].numel() < r.numel():
                pool[key] = r.reshape(-1)

    run = explore("r across steps and instances inside train()", prop, cases(), seed=seed,
                  max_examples=max_examples, shrink=False)
    details: dict[str, Any] = {"distribution": dist_cfg.distribution}
    extra = None
    if run.failure is None and pool:
        from scipy import stats

        values = torch.cat(list(pool.values())).double().numpy()
        if dist_cfg.distribution == "uniform":
            res = stats.kstest(values, "uniform")
            target = "U[0, 1]"
        else:
            res = stats.kstest(values, "beta", args=(dist_cfg.alpha, dist_cfg.beta))
            target = f"Beta({dist_cfg.alpha}, {dist_cfg.beta})"
        details.update({"ks_statistic": float(res.statistic), "ks_pvalue": float(res.pvalue),
                        "n_values": int(values.size), "n_steps": len(pool), "alpha": ALPHA})
        ks = (f"pooled r entries (n={values.size} from {len(pool)} distinct (seed, step) draws) vs "
              f"{target}: KS D={res.statistic:.4f}, p={res.pvalue:.3g}")
        if res.pvalue < ALPHA:
            extra = f"the distribution of r is rejected at alpha {ALPHA}: {ks}"
    else:
        ks = "KS test not run"
    return verdict(
        "C8", "inside real train() runs (salt.train's sample_r, step_generator and "
        "mixed_input_embeddings instrumented), every step consumed one fresh r of shape (B, 1, H); "
        "no two instances of a batch and no two steps shared an r vector; " + ks +
        f" (not rejected at alpha {ALPHA})", [run], bench, extra_failure=extra, details=details,
        notes=["r comes from step_generator(seed, step, stream=1), so it is fresh per step and "
               "instance yet reproducible after a resume."])


# ----------------------------------------------------------------------------- C6


def _classifier(bench: Bench, seed: int):
    torch.manual_seed(seed)
    with quiet():
        model = load_classifier(bench.model_dir, NUM_LABELS)
    return model.eval()


@checked
def check_c6(impl: MixupImpl | None = None, *, seed: int = 0, max_examples: int = 30,
             bench: Bench | None = None) -> dict[str, Any]:
    """C6 (mechanism): the SALT loss consumes the code-switched embeddings (changing a
    code-switched id changes the loss when r < 1; r = 1 / r = 0 give the source-only /
    code-switched-only loss; gradients reach the code-switched tokens' embedding rows) and
    evaluation of a SALT-trained classifier does not mix (predictions depend on the source only)."""
    impl = impl or MixupImpl()
    bench = bench or get_bench()
    # float64: one token's share of the loss can sit below float32's resolution on a random model
    model = _classifier(bench, seed).double()
    emb = model.get_input_embeddings()
    hidden, vocab = model.config.hidden_size, model.config.vocab_size
    config = _train_cfg()
    items = bench.train_items
    specials = set(bench.tokenizer.all_special_ids)
    deltas: list[float] = []  # |loss change| per example

    @st.composite
    def loss_cases(draw) -> dict[str, Any]:
        b = draw(st.integers(1, 4))
        return {"offset": draw(st.integers(0, len(items) - b)), "B": b,
                "seed": draw(st.integers(0, 2**31 - 1)), "r_max": draw(st.floats(0.05, 0.9)),
                "row": draw(st.floats(0, 1)), "pos": draw(st.floats(0, 1)),
                "new": draw(st.floats(0, 1))}

    def pick(frac: float, n: int) -> int:
        return min(int(frac * n), n - 1)

    def loss(batch: dict[str, torch.Tensor], r: torch.Tensor) -> torch.Tensor:
        return impl.salt_loss(model, emb, batch, config, r)

    def prop_loss(c: dict[str, Any]) -> None:
        batch = train_mod.collate_pairs(items[c["offset"]: c["offset"] + c["B"]], bench.pad_id,
                                        mixup_mod.step_generator(c["seed"], 0))
        g = torch.Generator().manual_seed(c["seed"])
        r = torch.rand(c["B"], 1, hidden, generator=g, dtype=torch.float64) * c["r_max"]  # r_j < 1
        b = pick(c["row"], c["B"])
        p = pick(c["pos"], int(batch["attention_mask"][b].sum()))
        used = (set(batch["input_ids"].flatten().tolist())
                | set(batch["cs_input_ids"].flatten().tolist()) | specials)
        fresh = [i for i in range(vocab) if i not in used]  # specials: pad's row gets no gradient
        new = fresh[pick(c["new"], len(fresh))]
        changed = dict(batch, cs_input_ids=batch["cs_input_ids"].clone())
        changed["cs_input_ids"][b, p] = new
        model.zero_grad(set_to_none=True)
        l0 = loss(batch, r)
        l1 = loss(changed, r)
        require(bool(torch.isfinite(l0)) and bool(torch.isfinite(l1)), "the SALT loss is not finite")
        require(float(l0.detach()) != float(l1.detach()),
                 f"the SALT loss does not consume the code-switched ids: replacing code-switched "
                 f"id {int(batch['cs_input_ids'][b, p])} by {new} at instance {b} position {p} "
                 f"left the loss at {float(l0.detach()):.6g} (r < 1 everywhere)")
        deltas.append(abs(float(l0.detach()) - float(l1.detach())))
        l1.backward()
        grad = emb.weight.grad
        g_new = 0.0 if grad is None else float(grad[new].abs().sum())
        require(g_new > 0, f"no gradient reaches the embedding row of the code-switched token "
                            f"{new} (it occurs only in the code-switched sequence)")
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            extra = {k: batch[k] for k in ("attention_mask", "token_type_ids") if k in batch}
            src_loss = model(input_ids=batch["input_ids"], labels=batch["labels"], **extra).loss
            cs_loss = model(input_ids=batch["cs_input_ids"], labels=batch["labels"], **extra).loss
            one = loss(batch, torch.ones(c["B"], 1, hidden, dtype=torch.float64))
            zero = loss(batch, torch.zeros(c["B"], 1, hidden, dtype=torch.float64))
        require(math.isclose(float(one), float(src_loss), rel_tol=1e-9, abs_tol=1e-9),
                 "with r = 1 the SALT loss {} is not the source-only loss {} "
                 "(h = r*h_s + (1-r)*h_t)".format(*fmt(one, src_loss)))
        require(math.isclose(float(zero), float(cs_loss), rel_tol=1e-9, abs_tol=1e-9),
                 "with r = 0 the SALT loss {} is not the loss of the code-switched ids alone "
                 "{}: the code-switched embeddings are not consumed".format(*fmt(zero, cs_loss)))

    run_loss = explore("the SALT loss consumes the code-switched embeddings", prop_loss,
                       loss_cases(), seed=seed, max_examples=max_examples)

    # a SALT-trained classifier, then evaluation with every mixing entry point spied on
    eval_items = bench.pairs
    with tempfile.TemporaryDirectory(prefix="salt-c6-") as tmp, quiet():
        train_mod.train(bench.model_dir, items[:16], Path(tmp), _train_cfg(seed=seed, batch_size=8,
                        lr=1e-3), NUM_LABELS, pad_id=bench.pad_id)
        trained = train_mod.load_trained(bench.model_dir, tmp, NUM_LABELS)

    @st.composite
    def eval_cases(draw) -> dict[str, Any]:
        n = draw(st.integers(1, 8))
        return {"offset": draw(st.integers(0, len(eval_items) - n)), "n": n,
                "batch_size": draw(st.integers(1, 8)), "torch_seed": draw(st.integers(0, 2**31 - 1))}

    def prop_eval(c: dict[str, Any]) -> None:
        sub = eval_items[c["offset"]: c["offset"] + c["n"]]
        calls: list[str] = []

        def spy(name: str, fn: Callable) -> Callable:
            def wrapped(*a: Any, **k: Any) -> Any:
                calls.append(name)
                return fn(*a, **k)
            return wrapped

        def hook(_mod: Any, _args: Any, kwargs: dict[str, Any]) -> None:
            if kwargs.get("inputs_embeds") is not None:
                calls.append("model(inputs_embeds=...)")

        names = ("sample_r", "mix_embeddings", "mixed_input_embeddings")
        handle = trained.register_forward_pre_hook(hook, with_kwargs=True)
        try:
            with patched(mixup_mod, **{n: spy(f"salt.mixup.{n}", getattr(mixup_mod, n))
                                        for n in names}), \
                 patched(train_mod, **{n: spy(f"salt.train.{n}", getattr(train_mod, n))
                                        for n in ("sample_r", "mixed_input_embeddings")}):
                torch.manual_seed(c["torch_seed"])
                first = impl.predict(trained, sub, bench.pad_id, c["batch_size"])
                torch.manual_seed(c["torch_seed"] + 1)
                again = impl.predict(trained, sub, bench.pad_id, c["batch_size"])
        finally:
            handle.remove()
        require(not calls, f"evaluation mixes: it called {sorted(set(calls))}")
        require(first == again, f"evaluation is random: predictions {first} then {again} on "
                                 "the same source input")
        with torch.no_grad():
            for k, it in enumerate(sub):
                kw = {"input_ids": torch.tensor([it.input_ids])}
                if it.token_type_ids is not None:
                    kw["token_type_ids"] = torch.tensor([it.token_type_ids])
                logits = trained(**kw).logits[0]
                top2 = torch.topk(logits, 2).values
                tie = float(top2[0] - top2[1]) < 1e-4
                require(first[k] == int(logits.argmax()) or tie,
                         f"evaluation predictions depend on more than the source input: item "
                         f"{it.uid} predicted {first[k]}, the source-only forward gives "
                         f"{int(logits.argmax())}")

    run_eval = explore("evaluation of a SALT-trained classifier does not mix", prop_eval,
                       eval_cases(), seed=seed, max_examples=max_examples)
    paired = {"rows": 0}
    run_pair = pairing_exploration(impl, bench, seed, max(2, max_examples // 4), paired)
    return verdict(
        "C6", "inside real train() runs every source row handed to the mix met its own "
        f"code-switched copy position by position ({paired['rows']} rows checked against the "
        "code-switch records: identical outside recorded substitutions, the recorded substitute "
        "at each, the output r*E[src] + (1-r)*E[cs] of exactly those rows); "
        "changing one code-switched id changes the SALT loss whenever r < 1, gradients "
        "reach the embedding row of a token present only in the code-switched copy, r = 1 and "
        "r = 0 reproduce the source-only and code-switched-only losses, and a SALT-trained "
        "classifier's evaluation calls no mixup function, passes no inputs_embeds, is "
        "deterministic and matches the source-only forward pass",
        [run_loss, run_eval, run_pair], bench,
        details={"pairing_rows_checked": paired["rows"],
                 "loss_change_min": min(deltas, default=None),
                 "loss_change_median": float(np.median(deltas)) if deltas else None},
        notes=["Gradients were measured with the word embeddings trainable; the default "
               "TrainConfig.freeze_word_embeddings=True lets gradients flow through the mix to "
               "the embedding output but does not update those rows."])


# ----------------------------------------------------------------------------- pairing (C6)


def _row(ids: torch.Tensor, n: int, pad: int) -> tuple[list[int], bool]:
    """The first n ids of a padded row and whether the rest is padding."""
    row = ids.tolist()
    return row[:n], all(t == pad for t in row[n:])


def check_pairing(calls: Sequence[tuple[torch.Tensor, ...]], bench: Bench,
                  items: Sequence[Any], records: Sequence[dict[str, Any]]) -> int:
    """Each (src_ids, cs_ids) row handed to the mix is an item's source and ITS OWN code-switched
    copy, position by position: identical outside the recorded substitutions, the recorded
    substitute at each substituted position, padding after; and the mix's output is
    r*E[src] + (1-r)*E[cs] of exactly those rows. Returns the number of rows checked."""
    by_src: dict[tuple[int, ...], int] = {}
    for k, it in enumerate(items):
        require(tuple(it.input_ids) not in by_src, "bench items are not distinct")
        by_src[tuple(it.input_ids)] = k
    uid_of = {tuple(r["input_ids"]): r["uid"] for r in records}
    recs_of: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        recs_of.setdefault(r["uid"], []).append(r)
    pad, rows = bench.pad_id, 0
    for step, (src_ids, cs_ids, r, weight, out) in enumerate(calls):
        require(src_ids.shape == cs_ids.shape, f"step {step}: src_ids {tuple(src_ids.shape)} and "
                                               f"cs_ids {tuple(cs_ids.shape)} differ in shape")
        for b in range(src_ids.shape[0]):
            match = [k for k, it in enumerate(items)
                     if _row(src_ids[b], len(it.input_ids), pad) == (list(it.input_ids), True)]
            require(len(match) == 1, f"step {step} row {b}: the source row is no training item")
            k = match[0]
            n = len(items[k].input_ids)
            cs, tail_pad = _row(cs_ids[b], n, pad)
            uid = uid_of[tuple(items[k].input_ids)]
            own = [rec for rec in recs_of[uid] if rec["cs_input_ids"] == cs]
            if not own:
                others = [j for j, it in enumerate(items) if j != k and any(
                    _row(cs_ids[b], len(c), pad) == (list(c), True) for c in it.cs_copies)]
                full = cs_ids[b].tolist()
                padded = [list(c) + [pad] * (len(full) - len(c)) for c in items[k].cs_copies]
                shifted = any(full in (c[1:] + c[:1], c[-1:] + c[:-1]) for c in padded)
                why = (f"the code-switched copy of item {others[0]} (another instance)" if others
                       else "its own copy shifted by one token" if shifted
                       else "no code-switched copy of it")
                raise Violation(f"step {step} row {b}: source {uid} was mixed with {why}, not "
                                "its own token-aligned copy")
            rec = own[0]
            subs = {s[0]: s[2] for s in rec["substitutions"]}
            src = list(items[k].input_ids)
            for p in range(n):
                want = subs.get(p, src[p])
                require(cs[p] == want, f"step {step} row {b} ({uid}) position {p}: code-switched "
                                       f"id {cs[p]}, the record says {want}")
            require(tail_pad, f"step {step} row {b} ({uid}): the copy runs past the source")
            rows += 1
        w = weight.double()
        rr = r.double()
        want = rr * w[src_ids] + (1 - rr) * w[cs_ids]  # (B, T, H)
        err = float((out.double() - want).abs().max())
        require(err <= 1e-5, f"step {step}: the mix handed (src_ids, cs_ids) returned something "
                             f"else than r*E[src] + (1-r)*E[cs] of them (max abs error {err:.3g})")
    return rows


def _train_pairs(impl: MixupImpl, bench: Bench, items: Sequence[Any], config,
                 out_dir: Path) -> list[tuple[torch.Tensor, ...]]:
    """Run the real ``train()`` with ``salt.train.mixed_input_embeddings`` instrumented; return
    (src_ids, cs_ids, r, embedding weight, output) of every call."""
    calls: list[tuple[torch.Tensor, ...]] = []

    def mixed(embedding, src_ids, cs_ids, r):
        out = impl.mixed_input_embeddings(embedding, src_ids, cs_ids, r)
        calls.append(tuple(t.detach().cpu().clone() for t in
                           (src_ids, cs_ids, r, embedding.weight, out)))
        return out

    with quiet(), patched(train_mod, sample_r=impl.sample_r, step_generator=impl.step_generator,
                          mixed_input_embeddings=mixed):
        train_mod.train(bench.model_dir, items, out_dir, config, NUM_LABELS, pad_id=bench.pad_id)
    return calls


def pairing_exploration(impl: MixupImpl, bench: Bench, seed: int, max_examples: int,
                        seen: dict[str, int]):
    """Hypothesis over real train() runs: seeds, batch sizes, steps, length grouping."""
    @st.composite
    def cases(draw) -> dict[str, int]:
        return {"seed": draw(st.integers(0, 2**16)), "batch_size": draw(st.integers(2, 6)),
                "steps": draw(st.integers(2, 3)), "group_by_length": draw(st.integers(0, 2))}

    def prop(c: dict[str, int]) -> None:
        items = bench.train_items[: c["batch_size"] * c["steps"]]
        uids = {r["uid"] for r in bench.records}
        records = [r for r in bench.records if r["uid"] in uids]
        with tempfile.TemporaryDirectory(prefix="salt-pair-") as tmp:
            calls = _train_pairs(impl, bench, items, _train_cfg(
                seed=c["seed"], batch_size=c["batch_size"],
                group_by_length=c["group_by_length"]), Path(tmp))
        require(len(calls) == c["steps"], f"{c['steps']} SALT steps called the mix "
                                          f"{len(calls)} times")
        seen["rows"] += check_pairing(calls, bench, items, records)

    return explore("each source mixed with its own aligned copy inside train()", prop, cases(),
                   seed=seed, max_examples=max_examples, shrink=False)
