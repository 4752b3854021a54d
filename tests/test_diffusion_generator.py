"""The diffusion kind end to end on a tiny moons zoo: training, sampling for seen and unseen
tasks, save / load, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from zoo_fixtures import moons_populations

from generators import DataConfig, WeightDataset, load_generator
from generators.diffusion import DiffusionConfig, DiffusionGenerator
from generators.registry import GENERATORS

TINY = {
    "training.max_steps": 40, "training.batch_size": 16, "autoencoder.steps": 10,
    "autoencoder.max_tokens": 4, "autoencoder.compression": 2, "denoiser.dim": 16,
    "denoiser.heads": 2, "task_encoder.hidden": 16, "task_encoder.heads": 2,
    "task_encoder.examples": 20,
}  # fmt: skip


@pytest.fixture(scope="module")
def trained() -> tuple[DiffusionGenerator, WeightDataset]:
    ds = WeightDataset.from_populations(moons_populations((3, 5), 6), DataConfig(heldout=0.2))
    gen = DiffusionGenerator(DiffusionConfig().with_overrides(TINY))
    gen.fit(ds)
    return gen, ds


def test_registered_and_preset_loads() -> None:
    assert GENERATORS["diffusion"] is DiffusionGenerator
    cfg = DiffusionConfig.load(Path(__file__).parents[1] / "data/generators/diffusion.toml")
    assert cfg.sampling.steps <= 20 and cfg.sampling.sampler in ("dpm", "ddim")


def test_latents_are_rescaled_to_unit_std(trained) -> None:
    gen, _ = trained
    mean, mask = gen._train["mean"], gen._train["token_mask"]
    assert abs(float(mean[mask].std()) - 1.0) < 1e-4
    assert torch.equal(gen.extra_tensors()["diffusion.scale"], gen.scale.reshape(1))
    assert float(gen.scale) != 1.0  # the raw latents were not already at unit std


def test_training_reduces_the_loss_and_only_the_autoencoder_is_frozen(trained) -> None:
    gen, ds = trained
    net = gen.network
    assert not any(p.requires_grad for p in net.autoencoder.parameters())
    assert all(p.requires_grad for p in net.denoiser.parameters())
    fresh = DiffusionGenerator(DiffusionConfig().with_overrides({**TINY, "training.max_steps": 80}))
    losses = fresh.fit(ds)
    assert sum(losses[-10:]) < sum(losses[:10])


def test_samples_have_the_layout_and_are_finite(trained) -> None:
    gen, ds = trained
    for width, g in ((3, 0), (5, 1)):
        pop = gen.sample(7, width=width, seed=2)
        assert pop.weights().shape == (7, ds.groups[g].arch.num_params)
        assert torch.isfinite(pop.weights()).all()
    assert not torch.equal(gen.sample(3, seed=0).weights(), gen.sample(3, seed=1).weights())


def test_task_data_and_unseen_task_names_sample(trained) -> None:
    gen, _ = trained
    x, y = torch.randn(30, 2), torch.randint(0, 2, (30,))
    pop = gen.sample(4, width=5, seed=0, task_data=(x, y))
    assert pop.task == "task-data" and pop.weights().shape == (4, 27)
    perm = torch.randperm(30)  # the same data in another order: the same nets
    again = gen.sample(4, width=5, seed=0, task_data=(x[perm], y[perm]))
    assert torch.equal(again.weights(), pop.weights())
    other = gen.sample(4, width=5, seed=0, task_data=(x + 3.0, y))
    assert not torch.equal(other.weights(), pop.weights())
    unseen = gen.sample(3, task="blobs:centers=2", width=3, seed=0)
    assert unseen.task == "blobs:centers=2" and unseen.weights().shape == (3, 17)


def test_unknown_task_without_data_is_a_clear_error(trained) -> None:
    gen, _ = trained
    with pytest.raises(ValueError, match="unknown task 'nosuch'.*no task_data"):
        gen.sample(2, task="nosuch")
    with pytest.raises(ValueError, match="width 7 is not available"):
        gen.sample(2, task="moons", width=7)
    with pytest.raises(ValueError, match="no trained layout of width 7"):
        gen.sample(2, width=7, task_data=(torch.randn(5, 2), torch.zeros(5, dtype=torch.long)))
    with pytest.raises(ValueError, match="unknown sampling option"):
        gen.sample(2, solver="heun")
    with pytest.raises(ValueError, match="does not take task_params"):
        gen.sample(2, task_params={"amplitude": 1.0})


def test_guidance_and_ddim_sample(trained) -> None:
    gen, _ = trained
    a = gen.sample(5, width=5, seed=3, guidance=2.0, sampler="ddim", steps=4)
    b = gen.sample(5, width=5, seed=3, sampler="ddim", steps=4)
    assert torch.isfinite(a.weights()).all() and not torch.equal(a.weights(), b.weights())


def test_save_load_reproduces_samples_bit_for_bit(trained, tmp_path: Path) -> None:
    gen, _ = trained
    gen.save(tmp_path / "run")
    back = load_generator(tmp_path / "run")
    assert isinstance(back, DiffusionGenerator)
    for kw in ({"width": 3}, {"width": 5, "target": 0.8},
               {"width": 5, "task_data": (torch.randn(25, 2), torch.randint(0, 2, (25,)))}):  # fmt: skip
        assert torch.equal(back.sample(6, seed=4, **kw).weights(),
                           gen.sample(6, seed=4, **kw).weights())  # fmt: skip
