"""accel-hw core: the array configuration, the golden arithmetic and the CLI (no HDL imports)."""

from accel.config import ArrayConfig, ConfigError, OverQConfig

__all__ = ["ArrayConfig", "ConfigError", "OverQConfig"]
__version__ = "0.1.0"
