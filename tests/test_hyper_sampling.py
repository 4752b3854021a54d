"""Hyper generator sampling: seen and held-out tasks, diversity, save/load, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hyper_fixtures import SINUSOIDS, dataset, family_zoo, generate, trained

from generators import load_generator
from generators.hyper import HyperGenerator


@pytest.fixture(scope="module")
def sinusoid_gen() -> HyperGenerator:
    archs, _ = family_zoo("mlp")
    return trained(dataset(archs, SINUSOIDS))[0]


def test_sample_gives_n_different_nets_of_the_group_layout(sinusoid_gen: HyperGenerator) -> None:
    pop = sinusoid_gen.sample(4, task=SINUSOIDS[1], width=3, seed=1)
    assert pop.task == SINUSOIDS[1] and pop.arch.width == 3
    w = pop.weights()
    assert w.shape == (4, pop.arch.num_params)
    assert torch.cdist(w, w).add(torch.eye(4)).min() > 0  # n different nets (the noise input)
    same = sinusoid_gen.sample(4, task=SINUSOIDS[1], width=3, seed=1).weights()
    assert torch.equal(w, same)
    one = sinusoid_gen.sample(4, task=SINUSOIDS[1], width=3, seed=1, temperature=0.0).weights()
    assert torch.equal(one, one[:1].expand(4, -1))  # no noise: the single net of the task


def test_sample_equals_the_network_for_the_same_noise(sinusoid_gen: HyperGenerator) -> None:
    pop = sinusoid_gen.sample(3, task=SINUSOIDS[2], width=5, seed=7)
    noise = torch.rand(3, 4, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(pop.weights(), generate(sinusoid_gen, SINUSOIDS[2], 5, noise))


def test_held_out_task_by_parameters_or_by_name(sinusoid_gen: HyperGenerator) -> None:
    params = {"amplitude": 2.5, "phase": 1.0}
    by_params = sinusoid_gen.sample(2, task_params=params, width=5, seed=3)
    by_name = sinusoid_gen.sample(2, task="sinusoid:amplitude=2.5,phase=1.0", width=5, seed=3)
    assert by_params.task == "sinusoid:amplitude=2.5,phase=1"
    assert by_name.task == "sinusoid:amplitude=2.5,phase=1.0"
    torch.testing.assert_close(by_params.weights(), by_name.weights(), rtol=0, atol=0)
    seen = sinusoid_gen.sample(2, task=SINUSOIDS[0], width=5, seed=3).weights()
    assert not torch.allclose(seen, by_params.weights())
    # a training task's parameters land on its own group: the same nets as asking by name
    again = sinusoid_gen.sample(2, task_params={"amplitude": 1.0, "phase": 0.0}, width=5, seed=3)
    assert again.task == SINUSOIDS[0]
    torch.testing.assert_close(again.weights(), seen, rtol=0, atol=0)


def test_tasks_it_cannot_embed_get_one_line_errors(sinusoid_gen: HyperGenerator) -> None:
    cases = [
        ({"task": "digits"}, r"cannot embed task 'digits': it has no parameters"),
        ({"task": "nosuch:a=1"}, r"cannot embed task 'nosuch:a=1': unknown task"),
        ({"task_params": {"angle": 30.0}}, r"cannot embed task parameters.*\(amplitude, phase\)"),
        ({"task": SINUSOIDS[0], "width": 4}, r"width 4 is not available"),
        (
            {"task_params": {"amplitude": 1.0, "phase": 0.0}, "width": 7},
            r"width 7 is not available",
        ),
        ({"target": 0.9}, r"target"),
        ({"temperature": -1.0}, r"sampling.temperature must be >= 0"),
        ({"steps": 3}, r"unknown sampling option\(s\) \['steps'\]"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message) as err:
            sinusoid_gen.sample(2, **kwargs)
        assert "\n" not in str(err.value)


def test_embedding_generator_refuses_unseen_tasks() -> None:
    archs, tasks = family_zoo("cnn")
    gen, _ = trained(dataset(archs, tasks))
    assert gen.sample(2, task="digits", width=2).weights().shape == (2, archs[0].num_params)
    with pytest.raises(
        ValueError, match=r"cannot embed task 'sinusoid:amplitude=2'.*one embedding"
    ):
        gen.sample(2, task="sinusoid:amplitude=2")


@pytest.mark.parametrize("family", ["mlp", "transformer"])
def test_save_load_reproduces_samples_bit_for_bit(family: str, tmp_path: Path) -> None:
    archs, tasks = family_zoo(family)
    gen, _ = trained(dataset(archs, tasks), **{"model.mip": family == "mlp"})
    gen.save(tmp_path / "run")
    back = load_generator(tmp_path / "run")
    assert isinstance(back, HyperGenerator)
    for arch in archs:
        a = gen.sample(5, task=tasks[-1], width=arch.width, seed=2).weights()
        b = back.sample(5, task=tasks[-1], width=arch.width, seed=2).weights()
        assert torch.equal(a, b)
    if family == "mlp":
        a = gen.sample(3, task_params={"amplitude": 0.5, "phase": 2.5}, seed=4).weights()
        b = back.sample(3, task_params={"amplitude": 0.5, "phase": 2.5}, seed=4).weights()
        assert torch.equal(a, b)
