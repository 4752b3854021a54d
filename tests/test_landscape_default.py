"""The phase map of the default preset is plausible (trains the whole default zoo: slow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.build import build_zoo
from pipelines.presets import default_spec
from pipelines.report import task_grids
from zoo.landscape.phases import PHASE_CODES, PHASES


@pytest.mark.slow
def test_default_preset_phase_map_is_plausible(tmp_path: Path) -> None:
    zoo = build_zoo(default_spec(), tmp_path / "zoo.zarr", workers=2)  # metrics stage included
    (grid,) = task_grids(zoo).values()
    loss, acc = grid.values["train_loss"], grid.values["test_acc"]
    phase = grid.values["phase"].astype(int)
    sharp = grid.values["sharp"].astype(bool)
    assert loss.shape == (len(zoo.spec.load.values), len(zoo.spec.temperature.values))

    # loads and temperatures ascend: row 0 is the narrowest, the last column the hottest
    assert np.isfinite(loss).all() and np.isfinite(acc).all()
    worst = np.unravel_index(np.nanargmax(loss), loss.shape)
    assert worst[0] == 0 or worst[1] == loss.shape[1] - 1  # in the narrowest row / hottest column
    # the narrowest-hottest corner is among the worst (collapsed cells tie at ln 10 = 2.303)
    assert loss[0, -1] >= 0.99 * np.quantile(loss, 0.9)
    assert loss[0].mean() == loss.mean(axis=1).max()  # the narrowest row is the worst row

    taxonomy = {PHASE_CODES[n] for n in ("I", "II", "III", "IV-A", "IV-B")}
    present = set(np.unique(phase).tolist()) & taxonomy
    assert len(present) >= 3, [PHASES.get(c) for c in present]

    best = np.unravel_index(np.nanargmax(acc), acc.shape)
    assert PHASES[phase[best]] in ("IV-A", "IV-B")  # well trained and connected
    assert not sharp[best]  # and flat
