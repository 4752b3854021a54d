"""Each module here registers its commands on :data:`pipelines.app.app` when imported."""

from pipelines.commands import (
    build,  # noqa: F401
    canonicalize,  # noqa: F401
    generators,  # noqa: F401
    landscape,  # noqa: F401
)
