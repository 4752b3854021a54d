"""``zoo canonicalize``: remove permutation symmetry from a zoo's weights."""

from __future__ import annotations

from typing import Annotated

import typer

from pipelines.app import SchedulerOpt, StoreArg, WorkersOpt, app


@app.command()
def canonicalize(
    store: StoreArg,
    method: Annotated[
        str,
        typer.Option(
            help="weight-matching (Git Re-Basin) | transfusion (attention heads as units) | "
            "smooth (NeuMeta's smooth unit order, no reference)"
        ),
    ] = "weight-matching",
    reference: Annotated[
        str,
        typer.Option(
            help="align to: barycenter (the medoid, then the mean of the aligned models, repeated) | medoid (the model nearest all others)"
        ),
    ] = "barycenter",
    population: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME", help="this population only (repeat for several; default: all)"
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="seed of the random order in which permutation groups are visited")
    ] = 0,
    overwrite: Annotated[
        bool, typer.Option(help="replace canonical weights made with other settings (else refused)")
    ] = False,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
) -> None:
    """Remove permutation symmetry: align every model of each population to a reference.

    Writes canonical/weights and the permutations used into the store (a resumable stage)."""
    from pipelines.canonicalize_stage import canonicalize_zoo

    canonicalize_zoo(
        store, method=method, reference=reference, populations=population or None, seed=seed,
        overwrite=overwrite, workers=workers, scheduler=scheduler,
    )  # fmt: skip
