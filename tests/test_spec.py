"""Zoo specs: every shipped preset loads; bad specs fail with a message naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from zoo_fixtures import tiny_spec_dict as tiny

from zoo.spec import SpecError, ZooSpec

PRESETS = sorted((Path(__file__).parents[1] / "data" / "specs").glob("*.toml"))


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_every_preset_loads_and_plans(path: Path) -> None:
    spec = ZooSpec.from_toml(path)
    plans = spec.plan()
    assert plans
    n_cells = len(spec.load.values) * len(spec.temperature.values)
    assert sum(p.num_models for p in plans) == n_cells * spec.seeds * len(spec.tasks)
    for p in plans:
        p.arch.permutation_spec().check(p.arch.layout)


def test_default_preset_is_big_enough() -> None:
    spec = ZooSpec.from_toml(Path(__file__).parents[1] / "data" / "specs" / "default.toml")
    assert sum(p.num_models for p in spec.plan()) >= 100
    assert spec.architecture["family"] == "mlp" and spec.tasks == ("digits",)


def test_plan_grid_and_round_trip() -> None:
    d = tiny()
    del d["checkpoints"]
    spec = ZooSpec.from_dict(d)
    plans = spec.plan()
    assert [p.name for p in plans] == ["moons-mlp-w4", "moons-mlp-w8"]
    hp = plans[1].hparams
    assert list(hp["learning_rate"]) == [0.05, 0.05, 0.5, 0.5]
    assert list(hp["seed"]) == [4, 5, 6, 7]  # cell * seeds + s: every model its own seed
    assert list(hp["width"]) == [8] * 4 and list(hp["load_index"]) == [1] * 4
    assert list(hp["cell"]) == [2, 2, 3, 3]
    assert ZooSpec.from_dict(spec.to_dict()) == spec
    assert spec.checkpoints == (0, 2)


def test_seeds_are_per_model_unless_init_is_shared() -> None:
    independent = [s for p in ZooSpec.from_dict(tiny()).plan() for s in p.hparams["seed"]]
    assert sorted(independent) == list(range(8))  # 4 cells x 2 seeds, all distinct
    shared = ZooSpec.from_dict(tiny(shared_init=True))
    assert [list(p.hparams["seed"]) for p in shared.plan()] == [[0, 1, 0, 1]] * 2
    assert ZooSpec.from_dict(shared.to_dict()) == shared
    assert ZooSpec.from_dict(tiny()).diff(shared) == ["shared_init"]


def test_data_fraction_axis_puts_cells_in_one_population() -> None:
    spec = ZooSpec.from_dict(
        tiny(
            load={"axis": "data_fraction", "values": [0.5, 1.0]},
            temperature={"axis": "batch_size", "values": [16, 64]},
        )
    )
    (plan,) = spec.plan()
    assert plan.num_models == 8
    assert sorted(set(plan.hparams["data_fraction"])) == [0.5, 1.0]
    assert sorted(set(plan.hparams["batch_size"])) == [16, 64]


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"tasks": ["nope"]}, "unknown task 'nope'"),
        ({"architecture": {"family": "resnet9000"}}, "unknown architecture 'resnet9000'"),
        ({"load": {"axis": "width", "values": []}}, "empty grid"),
        ({"load": {"axis": "width", "values": [0, 8]}}, "non-positive width"),
        ({"load": {"axis": "width", "values": [-4]}}, "negative"),
        ({"temperature": {"axis": "momentum", "values": [1]}}, "unknown temperature axis"),
        ({"load": {"axis": "depth", "values": [1]}}, "unknown load axis"),
        ({"seeds": 1}, "seeds per cell must be >= 2"),
        ({"colour": "blue"}, "unknown spec field"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"checkpoints": [0, 9]}, "checkpoints must be epochs"),
        ({"training": {"optimizer": "lion"}}, "unknown optimizer"),
        ({"training": {"lr": 0.1}}, "unknown training field"),
        ({"load": {"axis": "data_fraction", "values": [1.5]}}, "data_fraction values"),
        ({"tasks": ["mnist"]}, "needs --data-root"),
    ],
)
def test_bad_specs_raise_clear_errors(over: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        ZooSpec.from_dict(tiny(**over))


def test_missing_required_field_and_bad_toml(tmp_path: Path) -> None:
    d = tiny()
    del d["load"]
    with pytest.raises(SpecError, match="missing the required field 'load'"):
        ZooSpec.from_dict(d)
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [unclosed")
    with pytest.raises(SpecError, match="not valid TOML"):
        ZooSpec.from_toml(bad)
    with pytest.raises(FileNotFoundError, match="spec file not found"):
        ZooSpec.from_toml(tmp_path / "missing.toml")


def test_transformer_width_must_divide_heads() -> None:
    with pytest.raises(SpecError, match="not divisible by heads"):
        ZooSpec.from_dict(
            tiny(
                tasks=["modadd"],
                architecture={"family": "transformer", "heads": 4},
                load={"axis": "width", "values": [6]},
            )
        )


def test_the_spec_checks_know_every_spec_field() -> None:
    """check_spec_dict alone refuses unknown and missing fields: its tables must name exactly the
    fields of ZooSpec and of its training table."""
    from dataclasses import fields

    from zoo.spec import Training
    from zoo.spec_checks import FIELD_CHECKS, TRAINING_FIELDS

    assert set(FIELD_CHECKS) == {f.name for f in fields(ZooSpec)}
    assert set(TRAINING_FIELDS) == {f.name for f in fields(Training)}
