"""``zoo canonicalize``: remove permutation symmetry from a zoo's weights."""

from __future__ import annotations

from typing import Annotated

import typer

from pipelines.app import SchedulerOpt, StoreArg, WorkersOpt, app


@app.command()
def canonicalize(
    store: StoreArg,
    method: Annotated[
        str, typer.Option(help="weight-matching | transfusion | smooth")
    ] = "weight-matching",
    reference: Annotated[
        str,
        typer.Option(help="barycenter | medoid (see README: barycenter gives better generators)"),
    ] = "barycenter",
    population: Annotated[
        list[str] | None, typer.Option(help="population name (repeat for several; default all)")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the group visiting order")] = 0,
    overwrite: Annotated[
        bool, typer.Option(help="replace canonical weights made with other settings")
    ] = False,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
) -> None:
    """Align every model of each population to a reference (Git Re-Basin / TransFusion), or
    order each model's units smoothly (NeuMeta); writes canonical/weights and the permutations."""
    from pipelines.canonicalize_stage import canonicalize_zoo

    canonicalize_zoo(
        store, method=method, reference=reference, populations=population or None, seed=seed,
        overwrite=overwrite, workers=workers, scheduler=scheduler,
    )  # fmt: skip
