"""stepkit: spatio-temporal scene graphs, graph-guided multi-step Q/R/A, and STEP self-training."""

from __future__ import annotations

from stepkit.errors import StepkitError

__version__ = "0.1.0"
__all__ = ["StepkitError", "__version__"]
