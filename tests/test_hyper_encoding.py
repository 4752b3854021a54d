"""Hyper generator conditioning: the MIP encoding and the task-parameter scaling."""

from __future__ import annotations

import math

import pytest
import torch

from generators.hyper import ParamScaler, TaskEncoder, mip_encode


def test_mip_encoding_is_cos_sin_with_constant_norm() -> None:
    z = torch.tensor([[0.0, 0.25, 1.0], [0.5, 0.9, 0.1], [1.7, -0.3, 3.0]])
    enc = mip_encode(z)
    expected = torch.tensor(
        [[math.cos(math.pi * v / 2) for v in row] + [math.sin(math.pi * v / 2) for v in row]
         for row in z.tolist()]
    )  # fmt: skip
    torch.testing.assert_close(enc, expected)
    # every input pair has norm 1, so every row has norm sqrt(K), whatever z (even outside [0, 1])
    torch.testing.assert_close(enc.norm(dim=1), torch.full((3,), math.sqrt(3.0)))
    torch.testing.assert_close(enc[0, [0, 3]], torch.tensor([1.0, 0.0]))  # z = 0 -> (1, 0)


def test_encoder_input_norm_is_constant_only_with_mip() -> None:
    params = torch.rand(64, 2)
    noise = torch.rand(64, 3)
    for mip, constant in ((True, True), (False, False)):
        enc = TaskEncoder(2, 0, 1, 3, 8, mip)
        norms = enc.encode_scalars(params, noise).norm(dim=1)
        assert torch.allclose(norms, norms[0].expand(64)) == constant


def test_param_scaler_maps_training_range_to_unit_interval() -> None:
    params = [{"amplitude": 1.0, "phase": 0.0}, {"amplitude": 3.0, "phase": 2.0},
              {"amplitude": 2.0, "phase": 0.5}]  # fmt: skip
    s = ParamScaler.fit(params)
    assert s.names == ("amplitude", "phase")
    raw = torch.stack([s.vector(p, "t") for p in params])
    torch.testing.assert_close(s.scale(raw), torch.tensor([[0, 0], [1, 1], [0.5, 0.25]]))
    outside = s.scale(s.vector({"amplitude": 4.0, "phase": 3.0}, "t")[None])
    torch.testing.assert_close(outside, torch.tensor([[1.5, 1.5]]))  # extrapolates, no clamp
    back = ParamScaler.from_state_dict(s.state_dict())
    assert back.names == s.names
    torch.testing.assert_close(back.low, s.low)
    torch.testing.assert_close(back.high, s.high)
    one = ParamScaler.fit([{"angle": 30.0}])  # a single training value maps to 0.5
    torch.testing.assert_close(one.scale(torch.tensor([[45.0]])), torch.tensor([[0.5]]))


def test_param_scaler_names_missing_and_unknown_parameters() -> None:
    s = ParamScaler.fit([{"amplitude": 1.0, "phase": 0.0}, {"amplitude": 2.0, "phase": 1.0}])
    with pytest.raises(ValueError, match=r"cannot embed task 'x'.*\(amplitude, phase\).*\(angle\)"):
        s.vector({"angle": 1.0}, "task 'x'")
    with pytest.raises(ValueError, match=r"got \(amplitude\)"):
        s.vector({"amplitude": 1.0}, "task 'x'")
