"""Omnicloud: a multi-tenant marketing cloud for brand manufacturers.

Plugin authors import :data:`hookimpl` to mark their hook implementations.
"""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("omnicloud")

__all__ = ["__version__", "hookimpl"]
