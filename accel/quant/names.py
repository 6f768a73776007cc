"""Names of the quantizers and activation-scale modes, importable without torch (for the CLI)."""

__all__ = ["QUANTIZERS", "SCALE_MODES"]

#: Weight quantizers (:data:`accel.quant.weight.WEIGHT_QUANTIZERS` holds one class per name).
QUANTIZERS = ("baseline", "a2q", "a2q+", "oaq")
#: Input scale modes of :class:`accel.quant.act.ActQuant`.
SCALE_MODES = ("fixed", "calibrated", "learned")
