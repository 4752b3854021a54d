"""The diffusion kind end to end on a tiny moons zoo: training, sampling for seen and unseen
tasks, save / load, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from zoo_fixtures import moons_populations

from generators import DataConfig, WeightDataset, load_generator
from generators.diffusion import DiffusionConfig, DiffusionGenerator
from generators.diffusion.data_guidance import DataGuidance
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


def test_data_guidance_lowers_the_loss_on_the_given_examples(trained) -> None:
    gen, ds = trained
    task = ds.tasks[0]
    from zoo.tasks import get_task

    data = get_task(task)
    x, y = data.x_train[:30], data.y_train[:30]
    arch = ds.groups[1].arch
    losses = {}
    for scale in (0.0, 0.3):
        w = gen.sample(16, task_data=(x, y), width=arch.width, seed=3, data_guidance=scale,
                       data_guidance_steps=2).weights()  # fmt: skip
        losses[scale] = float(DataGuidance(arch, x, y, 1.0, 1).loss(w).mean())
    assert losses[0.3] < losses[0.0]
    plain = gen.sample(4, task_data=(x, y), width=arch.width, seed=3).weights()
    off = gen.sample(4, task_data=(x, y), width=arch.width, seed=3, data_guidance=0.0).weights()
    assert torch.equal(plain, off)  # 0 is plain sampling, bit for bit


def test_guidance_move_follows_the_normalized_gradient_and_keeps_padding() -> None:
    from zoo.architectures import MLP

    arch = MLP(width=3, in_shape=(2,), depth=1, num_outputs=2)
    x, y = torch.randn(12, 2), torch.randint(2, (12,))
    n_par = arch.num_params
    mask = torch.tensor([[1.0], [1.0], [0.0]])  # (T, 1): the last token is padding

    def decode(z: torch.Tensor) -> torch.Tensor:  # (n, 3, l) -> (n, N): a fixed linear map
        return z.flatten(1)[:, :n_par] * 0.5

    guide = DataGuidance(arch, x, y, scale=0.1, steps=1)
    z0 = torch.randn(5, 3, (n_par + 2) // 2) * mask
    moved = guide.move(z0, decode, mask)
    zg = z0.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(guide.loss(decode(zg)).sum(), zg)
    grad = grad * mask
    rms = (grad.pow(2).flatten(1).sum(1) / (mask.sum() * z0.shape[-1])).sqrt()
    assert torch.allclose(moved, z0 - 0.1 * grad / rms.reshape(-1, 1, 1), atol=1e-6)
    assert torch.equal(moved[:, 2], z0[:, 2])  # padding untouched
    assert torch.equal(DataGuidance(arch, x, y, 0.0, 1).move(z0, decode, mask), z0)
    with pytest.raises(ValueError, match="scale >= 0 and steps >= 1"):
        DataGuidance(arch, x, y, 0.1, 0)


def test_projection_at_every_step_keeps_draws_on_the_span(trained) -> None:
    gen, ds = trained
    w = gen.sample(6, width=5, seed=1, project_steps=True).weights()
    assert w.shape == (6, ds.groups[1].arch.num_params) and torch.isfinite(w).all()
    with pytest.raises(ValueError, match="data_guidance_steps"):
        gen.sample(2, width=5, data_guidance=0.1, data_guidance_steps=0)


def test_cli_sample_takes_the_kinds_options(trained, tmp_path, capsys) -> None:
    from pipelines.cli import main

    gen, _ = trained
    run = gen.save(tmp_path / "run")
    out = tmp_path / "s.safetensors"
    args = ["sample", str(run), "--n", "3", "--width", "5", "--out", str(out)]
    assert main([*args, "--option", "data_guidance=0.1", "--option", "project_steps=true"]) == 0
    assert out.exists()
    capsys.readouterr()
    assert main([*args, "--option", "nope=1"]) == 2
    assert "unknown sampling option(s) ['nope']" in capsys.readouterr().err
    assert main([*args, "--option", "data_guidance=inf"]) == 2
    assert "--option data_guidance must be finite" in capsys.readouterr().err
    assert main([*args, "--steps", "3", "--option", "steps=4"]) == 2
    assert "repeats an option given by its own flag" in capsys.readouterr().err
