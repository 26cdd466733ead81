"""Embedding mixup: hand-computed values, r's range, shape and freshness, no effect at eval."""

from __future__ import annotations

import pytest
import torch

from salt.mixup import (
    MixupConfig,
    mix_embeddings,
    mixed_input_embeddings,
    sample_r,
    step_generator,
)


def test_hand_computed_mix():
    h_s = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # (1, 2, 2)
    h_t = torch.tensor([[[5.0, 6.0], [7.0, 8.0]]])
    r = torch.tensor([[[0.25, 1.0]]])  # (1, 1, 2): shared over positions
    # dim 0: 0.25*1 + 0.75*5 = 4.0, 0.25*3 + 0.75*7 = 6.0; dim 1: r=1 keeps the source
    expected = torch.tensor([[[4.0, 2.0], [6.0, 4.0]]])
    assert torch.allclose(mix_embeddings(h_s, h_t, r), expected)


def test_r_shape_range_and_freshness():
    cfg = MixupConfig()
    r0 = sample_r(4, 7, 16, cfg, step_generator(0, 0, 1))
    r1 = sample_r(4, 7, 16, cfg, step_generator(0, 1, 1))
    assert r0.shape == (4, 1, 16)
    assert float(r0.min()) >= 0.0 and float(r0.max()) <= 1.0
    assert not torch.equal(r0, r1)  # a fresh draw at every step
    assert not torch.equal(r0[0], r0[1])  # and for every instance
    assert len(torch.unique(r0[0])) == 16  # a vector, not a scalar
    assert torch.equal(r0, sample_r(4, 7, 16, cfg, step_generator(0, 0, 1)))  # reproducible
    per_pos = sample_r(2, 5, 8, MixupConfig(per_position=True), step_generator(0, 0))
    assert per_pos.shape == (2, 5, 8)


def test_beta_distribution_mean():
    r = sample_r(2000, 1, 8, MixupConfig("beta", alpha=2.0, beta=6.0), step_generator(1, 0))
    assert abs(float(r.mean()) - 0.25) < 0.01  # Beta(2, 6) has mean 2 / 8
    assert float(r.min()) >= 0.0 and float(r.max()) <= 1.0


def test_bad_configs_and_misaligned_pairs():
    with pytest.raises(ValueError, match="unknown 'normal'"):
        MixupConfig("normal")
    emb = torch.nn.Embedding(10, 4)
    with pytest.raises(ValueError, match="must have the same shape"):
        mixed_input_embeddings(emb, torch.zeros(1, 3, dtype=torch.long),
                               torch.zeros(1, 4, dtype=torch.long), torch.rand(1, 1, 4))


def test_r_one_and_zero_select_each_side():
    emb = torch.nn.Embedding(10, 4)
    src, cs = torch.tensor([[1, 2, 3]]), torch.tensor([[4, 5, 6]])
    ones, zeros = torch.ones(1, 1, 4), torch.zeros(1, 1, 4)
    assert torch.equal(mixed_input_embeddings(emb, src, cs, ones), emb(src))
    assert torch.equal(mixed_input_embeddings(emb, src, cs, zeros), emb(cs))
