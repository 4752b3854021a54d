"""Bad zoo specs: every one refused by ``zoo build`` in one line (exit 2), before anything is
written; the size estimate and its limits; the hook for new spec fields."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from zoo_fixtures import tiny_spec_dict

from pipelines.cli import main
from zoo.spec import SpecError, ZooSpec
from zoo.spec_checks import (
    FIELD_CHECKS,
    MAX_STORE_BYTES,
    check_size,
    count_params,
    register_field_check,
    size_estimate,
)


def toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return repr(v)


def write_toml(path: Path, d: dict) -> Path:
    """A spec table as TOML: scalars and lists first, then one [table] per dict."""
    lines = [f"{k} = {toml_value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(f"[{k}]")
            lines += [f"{kk} = {toml_value(vv)}" for kk, vv in v.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


DEEP = {"family": "mlp", "depth": 2}
BAD_SPECS = [
    ({"tasks": [3]}, "tasks[0] must be a non-empty string, got 3"),
    ({"tasks": []}, "tasks must be a task name or a non-empty list"),
    ({"seeds": 2.5}, "seeds must be an integer, got 2.5"),
    ({"seeds": 1}, "seeds per cell must be >= 2"),
    ({"epochs": 2.5}, "epochs must be an integer, got 2.5"),
    ({"epochs": 0}, "epochs must be >= 1"),
    ({"training": {"momentum": "x"}}, "training.momentum must be a finite number, got 'x'"),
    ({"training": {"momentum": -0.5}}, "training.momentum must be in [0, 1)"),
    ({"training": {"momentum": 1.0}}, "training.momentum must be in [0, 1)"),
    ({"training": {"weight_decay": -1e-4}}, "training.weight_decay must be >= 0"),
    ({"training": {"learning_rate": 0}}, "training.learning_rate must be > 0"),
    ({"training": {"batch_size": 0}}, "training.batch_size must be >= 1"),
    ({"training": {"momentun": 0.9}}, "unknown training field(s): momentun"),
    ({"checkpoints": [3, 0]}, "checkpoints must be strictly increasing"),
    ({"checkpoints": [0, 5]}, "checkpoints must be epochs in [0, 2]"),
    ({"checkpoints": [0, 1.5]}, "checkpoints[1] must be an integer"),
    ({"shared_init": "false"}, "shared_init must be true or false, got 'false'"),
    ({"sedes": 3}, "unknown spec field(s): sedes"),
    ({"load": {"axis": "width", "values": ["4"]}}, "load.values[0] must be a finite number"),
    ({"load": {"axis": "width", "values": [4], "extra": 1}}, "exactly 'axis' and 'values'"),
    ({"architecture": {"family": "mlp", "depth": 0}}, "architecture.depth must be >= 1"),
    ({"architecture": {"family": "mlp", "dept": 2}}, "unknown architecture field(s) dept"),
    ({"models_per_chunk": -1}, "models_per_chunk must be >= 0"),
    ({"tasks": ["mnist1d:num_samples=1e9"]}, "num_samples must be in [1, 1e+07], got 1e+09"),
    # sizes: refused from an estimate, nothing allocated (a width of 1e5 at depth 2 is 1e10
    # parameters: 40 GB per net)
    ({"architecture": DEEP, "load": {"axis": "width", "values": [100000]}}, "is too large"),
    ({"architecture": DEEP, "load": {"axis": "width", "values": [1e9]}}, "stored weights"),
    ({"epochs": 10**15, "checkpoints": [0, 1]}, "training work"),
]


@pytest.mark.parametrize(("over", "message"), BAD_SPECS)
def test_bad_spec_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], over: dict, message: str
) -> None:
    spec = write_toml(tmp_path / "spec.toml", tiny_spec_dict(**over))
    store = tmp_path / "zoo.zarr"
    code = main(["build", str(spec), "--store", str(store), "--workers", "0", "--no-metrics"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert message in err, err
    assert not store.exists(), "nothing is written for a refused spec"


def test_size_estimate_matches_the_built_architecture() -> None:
    """Stored bytes = 4 x parameters x models x kept checkpoints, with parameters counted on
    the meta device equal to the real module's."""
    spec = ZooSpec.from_dict(tiny_spec_dict())
    est = size_estimate(spec)
    want = 0
    for plan in spec.plan():
        assert count_params(plan.arch) == plan.arch.num_params
        want += 4 * plan.arch.num_params * plan.num_models * len(spec.checkpoints)
    assert est.store_bytes == want
    assert est.problems() == []
    assert 0 < est.flops < 1e12 and est.train_bytes < 2**30


def test_force_lifts_the_size_limit() -> None:
    d = tiny_spec_dict(architecture=DEEP, load={"axis": "width", "values": [100000]})
    spec = ZooSpec.from_dict(d)
    with pytest.raises(SpecError, match="too large.*--force"):
        check_size(spec)
    est = check_size(spec, force=True)
    assert est.store_bytes > MAX_STORE_BYTES
    assert math.isclose(est.store_bytes, 4 * count_params(spec.plan()[0].arch) * 4 * 3)


def test_field_check_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new top-level field is accepted once it has a check, and its check runs."""
    monkeypatch.setitem(FIELD_CHECKS, "tasks", FIELD_CHECKS["tasks"])
    seen = []

    def tasks_table(v: object) -> None:
        seen.append(v)
        if not isinstance(v, list):
            raise SpecError("tasks tables are checked by the hook")

    register_field_check("tasks", tasks_table)
    with pytest.raises(SpecError, match="checked by the hook"):
        ZooSpec.from_dict(tiny_spec_dict(tasks={"a": {}}))
    assert seen == [{"a": {}}]
