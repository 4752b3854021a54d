"""Latent diffusion's parts: tokens, the KL autoencoder, the schedulers, the task encoder."""

from __future__ import annotations

import pytest
import torch
from zoo_fixtures import moons_populations

from generators import DataConfig, PaddedLayout, WeightDataset
from generators.diffusion import (
    SetFeatures,
    TaskEncoder,
    TokenLayout,
    WeightAutoencoder,
    chunk_size,
    denoise,
    diffusion_loss,
    latent_scale,
    train_autoencoder,
    training_scheduler,
)
from generators.diffusion.span import LatentSpan
from generators.diffusion.tokens import layer_of
from zoo import MLP
from zoo.tasks import get_task
from zoo.training import evaluate


def test_chunk_size_is_the_smallest_power_of_two_within_max_tokens() -> None:
    assert chunk_size(26122, 32) == 1024  # 26122 / 32 = 816.3 -> 1024
    assert chunk_size(26122, 26) == 1024 and chunk_size(26122, 25) == 2048
    assert chunk_size(10, 32) == 8  # never below MIN_CHUNK
    with pytest.raises(ValueError, match="max_tokens"):
        chunk_size(100, 0)


def test_tokens_cut_each_layer_and_round_trip() -> None:
    layouts = tuple(MLP(width=w, in_shape=(64,), num_outputs=10, depth=2).layout for w in (4, 128))
    padded = PaddedLayout(layouts)
    tok = TokenLayout.of(padded, 32)
    assert tok.size == chunk_size(padded.dim, 32) == 1024
    # hidden.0: 64*128+128 = 8320 -> 9 tokens, hidden.1: 16512 -> 17, out: 1290 -> 2
    assert tok.count == 28 and torch.bincount(tok.layer).tolist() == [9, 17, 2]
    names = padded.union.names
    for t in range(tok.count):  # no token straddles two layers
        real = tok.index[t][tok.index[t] < padded.dim]
        owners = {layer_of(n) for n in names
                  for a, b in [padded.union.offsets[n]] if ((real >= a) & (real < b)).any()}  # fmt: skip
        assert len(owners) == 1
    z = torch.randn(3, padded.dim) * padded.masks[0]
    assert torch.equal(tok.join(tok.split(z)), z)
    assert torch.equal(tok.masks[0].sum(), padded.masks[0].sum())
    w = torch.randn(2, layouts[0].num_params)  # a width-4 net reaches its layout by one gather
    flat = tok.split(padded.pad(w, 0)).reshape(2, -1)
    assert torch.equal(flat[:, tok.group_index(0)], w)
    assert tok.token_masks[0].sum() < tok.count == tok.token_masks[1].sum()


def test_autoencoder_round_trip_keeps_each_nets_accuracy() -> None:
    """PCA start + 30 steps of training, as many latent values per token as values (the
    default zoo's regime: 64 latent values per token for ~70 nets): every training net of a tiny
    two-width moons zoo decoded from its posterior mean keeps its validation accuracy within 2
    points, and its weights within 5% (relative L2)."""
    ds = WeightDataset.from_populations(moons_populations((3, 5), 6), DataConfig(heldout=0.0))
    tok = TokenLayout.of(ds.padded, 4)
    z = ds.normalized
    tokens, mask = tok.split(z), tok.masks[ds.group].float()
    ae = WeightAutoencoder(tok.count, tok.size, tok.size, 16)
    losses = train_autoencoder(ae, tokens, mask, 30, 8, 3e-4, 1e-6, seed=0)
    assert len(losses) == 30
    with torch.no_grad():
        mean, _ = ae.encode(tokens)
        rec = tok.join(ae.decode(mean))
    task = get_task("moons")
    for g, grp in enumerate(ds.groups):
        rows = ds.group == g
        w = ds.padded.crop(ds.normalizer.denormalize(rec[rows], ds.group[rows]), g)
        _, acc = evaluate(grp.arch, task, w, "val")
        _, ref = evaluate(grp.arch, task, ds.padded.crop(ds.weights[rows], g), "val")
        assert (acc - ref).abs().max() <= 0.02
        real = ds.padded.crop(ds.weights[rows], g)
        assert ((w - real).norm(dim=1) / real.norm(dim=1)).max() < 0.05
    scale = latent_scale(mean, tok.token_masks[ds.group])
    assert abs(float((mean * scale)[tok.token_masks[ds.group]].std()) - 1.0) < 1e-5


def test_ddpm_add_noise_is_the_reference_formula() -> None:
    sched = training_scheduler(1000, "linear")
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 3, 5, generator=g), torch.randn(4, 3, 5, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)  # DDPM's linear betas
    abar = torch.cumprod(1 - betas, 0)[t].float().reshape(-1, 1, 1)
    ref = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
    assert torch.allclose(sched.add_noise(x0, eps, t), ref, rtol=1e-5, atol=1e-5)


def true_velocity(sched, x0: torch.Tensor):
    """The exact v-prediction of x_t against the clean x0: v = sqrt(abar) eps - sqrt(1 - abar)
    x0, with eps the noise that x_t holds."""

    def v(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = sched.alphas_cumprod[t].reshape(-1, *[1] * (x.dim() - 1)).to(x.dtype)
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        return a.sqrt() * eps - (1 - a).sqrt() * x0

    return v


@pytest.mark.parametrize("sampler", ["ddim", "dpm"])
def test_denoising_with_the_true_velocity_recovers_the_clean_latents(sampler: str) -> None:
    """With an oracle that returns the exact velocity of x_t against x0, 10 steps of the fast
    scheduler take pure noise back to x0."""
    sched = training_scheduler(1000, "linear")
    x0 = torch.randn(6, 4, 3, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(6, 4, 3, generator=torch.Generator().manual_seed(1))
    out = denoise(true_velocity(sched, x0), noise, sched, sampler, 10)
    assert (out - x0).abs().max() < 1e-3
    with pytest.raises(ValueError, match="unknown sampler"):
        denoise(true_velocity(sched, x0), noise, sched, "euler", 10)


def test_diffusion_loss_of_the_oracle_is_zero_and_masks_padding() -> None:
    """The loss regresses the velocity of the noise it adds (zero for the exact one), and only
    on the real entries: an oracle wrong by 5 on the masked ones still scores 0; a zero
    prediction scores the mean squared velocity."""
    sched = training_scheduler(100, "linear")
    x0 = torch.randn(5, 3, 2)
    mask = torch.ones(5, 3, 1)
    mask[:, 2] = 0
    oracle = true_velocity(sched, x0)

    def wrong_on_padding(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return oracle(xt, t) + torch.where(mask.bool(), 0.0, 5.0)

    assert float(diffusion_loss(wrong_on_padding, x0, mask, sched, torch.Generator())) < 1e-8
    g = torch.Generator().manual_seed(3)
    zero = diffusion_loss(lambda x, t: torch.zeros_like(x), x0, mask, sched, g)
    g = torch.Generator().manual_seed(3)  # the same draws, re-implemented
    eps = torch.randn(x0.shape, generator=g)
    t = torch.randint(100, (5,), generator=g)
    a = sched.alphas_cumprod[t].reshape(-1, 1, 1)
    v = a.sqrt() * eps - (1 - a).sqrt() * x0
    assert torch.allclose(zero, (v.pow(2) * mask).sum() / (mask.sum() * 2))


def test_task_encoder_is_exactly_order_invariant_and_reads_the_content() -> None:
    task = get_task("digits")
    feats = SetFeatures(64, 10, classification=True)
    feats.fit([task.x_train], [task.y_train])
    torch.manual_seed(0)
    enc = TaskEncoder(feats, hidden=32, heads=4, out=16).eval()
    x, y = task.x_train[:100], task.y_train[:100]
    e = enc(x, y)
    for seed in range(3):
        perm = torch.randperm(100, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(enc(x[perm], y[perm]), e)  # bit for bit
    y2 = y.clone()
    y2[0] = (y2[0] + 1) % 10
    assert not torch.allclose(enc(x, y2), e)  # one label changed
    assert not torch.allclose(enc(task.x_train[100:200], task.y_train[100:200]), e)
    with pytest.raises(ValueError, match="at most 64"):
        enc(torch.randn(5, 65), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="classes in"):
        enc(x[:5], torch.full((5,), 10))


def test_latent_span_keeps_training_latents_and_projects_orthogonally() -> None:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(2, 3, 12, generator=g)  # two layouts, 3 directions each in 12 = 4 x 3
    coef = torch.randn(10, 3, generator=g)
    layout = torch.tensor([0] * 5 + [1] * 5)
    lat = (coef.unsqueeze(-1) * base[layout]).sum(1).reshape(10, 4, 3) + 2.0  # (M, T, l)
    span = LatentSpan.fit(lat, layout, 2)
    b = span.basis[0][span.basis[0].norm(dim=1) > 0]
    assert torch.allclose(b @ b.T, torch.eye(len(b)), atol=1e-5)  # orthonormal rows
    for r in (0, 1):
        own = lat[layout == r]
        assert torch.allclose(span.project(own, r), own, atol=1e-4)  # training latents stay
        x = torch.randn(6, 4, 3, generator=g)
        p = span.project(x, r)
        assert torch.allclose(span.project(p, r), p, atol=1e-4)  # a projection
        resid = (x - p).flatten(1)
        assert (resid @ span.basis[r].T).abs().max() < 1e-4  # orthogonal to the span
