"""scaling: how classic ML algorithms scale and map-reduce, measured on Ray, Dask and Spark."""

from scaling.errors import DataError, EngineError, ScalingError, UsageError

__version__ = "0.1.0"
__all__ = ["DataError", "EngineError", "ScalingError", "UsageError", "__version__"]
