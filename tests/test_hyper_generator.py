"""Hyper generator: layouts per family, per-task weights in one batch, the training loss."""

from __future__ import annotations

import pytest
import torch
from hyper_fixtures import SINUSOIDS, dataset, family_zoo, generate, trained

from generators.hyper import HyperGenerator
from zoo.tasks import get_task
from zoo.training import task_loss


@pytest.mark.parametrize("family", ["mlp", "cnn", "transformer"])
def test_generated_nets_fit_every_family_layout(family: str) -> None:
    archs, tasks = family_zoo(family)
    gen, losses = trained(dataset(archs, tasks))
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    for arch in archs:
        w = generate(gen, tasks[0], arch.width, torch.rand(3, 4))
        assert w.shape == (3, arch.num_params)
        x = get_task(tasks[0]).x_test[:5]
        out = arch.forward(w, x)
        assert out.shape == (3, 5, arch.num_outputs) and torch.isfinite(out).all()


def test_tasks_in_one_batch_get_their_own_weights() -> None:
    archs, tasks = family_zoo("mlp")
    gen, _ = trained(dataset(archs, tasks))
    info = gen.require_info()
    noise = torch.rand(2, 4)
    with torch.no_grad():
        both = gen.generate(gen.task_table[[0, 2]], None, torch.tensor([1, 1]), noise)
        alone = [gen.generate(gen.task_table[[t]], None, torch.tensor([1]), noise[[i]])
                 for i, t in enumerate((0, 2))]  # fmt: skip
    assert not torch.allclose(both[0], both[1])
    for i in range(2):
        torch.testing.assert_close(both[i], alone[i][0], rtol=1e-6, atol=1e-7)
    assert info.tasks[0] != info.tasks[2]


def test_task_loss_is_each_nets_loss_on_its_own_tasks_examples() -> None:
    """The training loss re-computed by hand: the step's noise, then per row (in batch order) its
    task's training examples, each net evaluated alone; plus the reconstruction term."""
    archs, tasks = family_zoo("mlp")
    ds = dataset(archs[:1], tasks)
    gen, _ = trained(ds, **{"objective.recon_weight": 0.3})
    info = gen.require_info()
    index = torch.tensor([0, 4, 8, 1])  # rows of three tasks
    loss = gen.training_loss(index, torch.Generator().manual_seed(5))
    rng = torch.Generator().manual_seed(5)
    noise = torch.rand(4, 4, generator=rng)
    rows = ds.train_index[index]
    expected = []
    thetas = []
    for r, u in zip(rows.tolist(), noise, strict=True):
        task = info.groups[int(ds.group[r])].task
        w = generate(gen, task, archs[0].width, u[None])  # (1, N)
        thetas.append(info.padded.pad(w, 0)[0])
        x, y = get_task(task).split("train")
        pick = torch.randint(len(x), (8,), generator=rng)
        expected.append(
            task_loss(get_task(task), archs[0].forward(w, x[pick][None]), y[pick][None])
        )
    z = (torch.stack(thetas) - ds.weights[rows]) / ds.normalizer.std[ds.group[rows]]
    recon = (z * ds.padded.masks[ds.group[rows]]).pow(2).sum(1) / ds.padded.masks[0].sum()
    torch.testing.assert_close(loss, torch.cat(expected).mean() + 0.3 * recon.mean())


def test_training_lowers_the_task_loss() -> None:
    archs, tasks = family_zoo("mlp")
    _, losses = trained(dataset(archs[:1], tasks), steps=80,
                        **{"training.learning_rate": 1e-2, "objective.examples": 32})  # fmt: skip
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.5 * first  # about 0.33 x in this setting


def test_conditioning_modes() -> None:
    archs, _ = family_zoo("mlp")
    gen, _ = trained(dataset(archs[:1], SINUSOIDS))
    assert gen.scaler.names == ("amplitude", "phase") and gen.network.encoder.task is None
    archs, tasks = family_zoo("cnn")  # digits: no parameters, one embedding per task
    gen, _ = trained(dataset(archs[:1], tasks))
    assert gen.scaler.names == () and gen.network.encoder.task is not None
    with pytest.raises(ValueError, match="cannot embed task 'x'.*one embedding per task"):
        gen.task_vector({"angle": 1.0}, "task 'x'")
    with pytest.raises(ValueError, match="conditioning = 'params' needs tasks.*'digits' has none"):
        trained(dataset(archs[:1], tasks), **{"model.conditioning": "params"})


def test_mip_changes_only_the_encoder_input() -> None:
    archs, _ = family_zoo("mlp")
    ds = dataset(archs[:1], SINUSOIDS)
    plain, _ = trained(ds, steps=1)
    mip, _ = trained(ds, steps=1, **{"model.mip": True})
    assert isinstance(mip, HyperGenerator) and mip.network.encoder.mip
    assert mip.network.encoder.mlp[0].in_features == 2 * plain.network.encoder.mlp[0].in_features
