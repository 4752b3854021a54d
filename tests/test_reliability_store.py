"""A damaged store is noticed and healed: checksums, ``zoo verify``, readers refusing damaged
data in one line, ``zoo build`` re-training only the damaged models (the others bit for bit
unchanged); the lock is taken before creation, and finished models are never wiped silently."""

from __future__ import annotations

import os
import shutil
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import zarr
from zoo_fixtures import built_tiny_zoo, tiny_spec_dict

from pipelines.build import build_zoo
from pipelines.cli import main
from zoo.integrity import DamagedStoreError, row_checksums
from zoo.spec import ZooSpec
from zoo.store import StoreError, create_or_check, open_zoo
from zoo.store_lock import BuildLock
from zoo.training import Status

POP = "moons-mlp-w4"  # 4 models in 2 chunks of 2


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> str:
    return built_tiny_zoo(tmp_path_factory.mktemp("pristine"))


def copy_of(pristine: str, tmp_path: Path) -> str:
    dst = tmp_path / "zoo.zarr"
    shutil.copytree(pristine, dst)
    return str(dst)


def shard(store: str, population: str, index: int) -> Path:
    return Path(store) / population / "weights" / "c" / str(index) / "0" / "0"


def delete(store: str) -> None:
    shard(store, POP, 1).unlink()


def truncate(store: str) -> None:
    f = shard(store, POP, 1)
    os.truncate(f, f.stat().st_size // 2)


def garbage(store: str) -> None:
    f = shard(store, POP, 1)
    f.write_bytes(np.random.default_rng(0).bytes(f.stat().st_size))


def silent(store: str) -> None:
    """One model's last checkpoint overwritten with other (valid) values: only the checksum
    tells."""
    g = zarr.open_group(store, mode="r+")[POP]
    g["weights"][3, -1, :] = np.zeros(g["weights"].shape[2], dtype=np.float32)


DAMAGES: dict[str, tuple[Callable[[str], None], list[int]]] = {
    "deleted": (delete, [2, 3]),
    "truncated": (truncate, [2, 3]),
    "garbage": (garbage, [2, 3]),
    "silent": (silent, [3]),
}


def test_checksums_are_written_with_the_weights(pristine: str) -> None:
    """CRC-32 of each model's float32 bytes at each kept checkpoint, re-computed here."""
    g = zarr.open_group(pristine, mode="r")[POP]
    w, sums = g["weights"][:], g["checksums"][:]
    assert sums.shape == w.shape[:2] and sums.dtype == np.uint32
    for i in range(w.shape[0]):
        for c in range(w.shape[1]):
            assert sums[i, c] == zlib.crc32(np.ascontiguousarray(w[i, c]).tobytes())
    assert np.array_equal(row_checksums(w), sums)
    assert all(not d.damaged for d in open_zoo(pristine).verify())


@pytest.mark.parametrize("kind", list(DAMAGES))
def test_damage_is_found_refused_and_healed(
    pristine: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    store = copy_of(pristine, tmp_path)
    damage, rows = DAMAGES[kind]
    damage(store)
    # zoo verify: non-zero, naming the population and the models
    assert main(["verify", store]) == 1
    out, err = capsys.readouterr()
    assert f"population {POP}: {len(rows)} model(s) fail their checksums: " in out
    assert ", ".join(map(str, rows)) in out and "is damaged" in err
    # readers: one line, never fill values
    assert main(["info", store]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "is damaged" in err
    with pytest.raises(DamagedStoreError, match="fail their checksums|cannot be read"):
        open_zoo(store).population(POP).weights()
    # zoo build: re-trains the damaged models, the others stay bit for bit
    build_zoo(ZooSpec.from_dict(tiny_spec_dict()), store, workers=0, metrics=False)
    assert main(["verify", store]) == 0
    capsys.readouterr()
    a, b = zarr.open_group(pristine, mode="r"), zarr.open_group(store, mode="r")
    for name in ("moons-mlp-w4", "moons-mlp-w8"):
        assert np.array_equal(a[name]["weights"][:], b[name]["weights"][:], equal_nan=True)
        assert np.array_equal(a[name]["status"][:], b[name]["status"][:])


def test_undamaged_models_of_a_retrained_chunk_are_kept(pristine: str, tmp_path: Path) -> None:
    """Model 3 damaged silently: its chunk (models 2, 3) trains again, and model 2's stored
    bytes are written back (here made distinguishable by a different but valid value)."""
    store = copy_of(pristine, tmp_path)
    g = zarr.open_group(store, mode="r+")[POP]
    marked = g["weights"][2] + 1.0  # (C, N): model 2 as if trained differently, checksummed
    g["weights"][2] = marked
    g["checksums"][2] = row_checksums(marked)
    silent(store)
    build_zoo(ZooSpec.from_dict(tiny_spec_dict()), store, workers=0, metrics=False)
    g = zarr.open_group(store, mode="r")[POP]
    assert np.array_equal(g["weights"][2], marked), "an intact model is never re-trained"
    ref = zarr.open_group(pristine, mode="r")[POP]["weights"][3]
    assert np.array_equal(g["weights"][3], ref), "the damaged one is trained again"


def test_lost_status_array(pristine: str, tmp_path: Path, capsys) -> None:
    store = copy_of(pristine, tmp_path)
    shutil.rmtree(Path(store) / POP / "status")
    assert main(["info", store]) == 2
    assert "status array is missing" in capsys.readouterr().err
    build_zoo(ZooSpec.from_dict(tiny_spec_dict()), store, workers=0, metrics=False)
    assert (open_zoo(store).population(POP).status == Status.DONE).all()
    assert main(["verify", store]) == 0


def test_incomplete_flag_never_wipes_finished_models(pristine: str, tmp_path: Path) -> None:
    store = copy_of(pristine, tmp_path)
    root = zarr.open_group(store, mode="r+")
    root.attrs["weightzoo"] = {**root.attrs["weightzoo"], "complete": False}
    spec = ZooSpec.from_dict(tiny_spec_dict())
    with pytest.raises(StoreError, match=r"holds 8 finished model\(s\).*--overwrite"):
        build_zoo(spec, store, workers=0, metrics=False)
    assert (zarr.open_group(store, mode="r")[POP]["status"][:] == Status.DONE).all()
    with BuildLock(store):
        create_or_check(store, spec, overwrite=True)
    assert (zarr.open_group(store, mode="r")[POP]["status"][:] == Status.PENDING).all()
    assert (Path(store) / ".build.lock").is_file(), "the lock file survives the wipe"


def test_other_spec_refused_unless_overwrite(pristine: str, tmp_path: Path) -> None:
    store = copy_of(pristine, tmp_path)
    other = ZooSpec.from_dict(tiny_spec_dict(epochs=3, checkpoints=[0, 3]))
    with pytest.raises(StoreError, match="different spec.*--overwrite"):
        build_zoo(other, store, workers=0, metrics=False)


def test_lock_comes_before_creation(tmp_path: Path) -> None:
    """A second build of a new store, started while the first holds the lock, is refused
    before it creates or wipes anything (this raced and broke stores before)."""
    store = tmp_path / "new.zarr"
    spec = ZooSpec.from_dict(tiny_spec_dict())
    with BuildLock(store):
        with pytest.raises(StoreError, match="being built"):
            build_zoo(spec, str(store), workers=0, metrics=False)
        assert [p.name for p in store.iterdir()] == [".build.lock"]


def test_fingerprint(pristine: str, tmp_path: Path) -> None:
    """Equal for a copy, different once one model's weights (and checksums) change."""
    store = copy_of(pristine, tmp_path)
    fp = open_zoo(pristine).fingerprint()
    assert open_zoo(store).fingerprint() == fp and len(fp) == 16
    g = zarr.open_group(store, mode="r+")[POP]
    w = g["weights"][0] + 1.0
    g["weights"][0] = w
    g["checksums"][0] = row_checksums(w)
    assert open_zoo(store).fingerprint() != fp
