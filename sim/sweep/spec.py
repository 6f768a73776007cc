"""One design point of a sweep: an array configuration, a workload (model) and its quantized weights.

A point's identity is its :attr:`PointSpec.key`, the unique key of the results store:
``(config hash, model, quantizer, N, M, the checkpoint's target P, the checkpoint's hash)``.
Both questions architects ask map onto it:

* *a model retrained for each P*: every point uses the checkpoint whose target P equals the
  array's P (``target_p == config.pe_acc_bits``);
* *one checkpoint on narrower arrays*: every point uses the same checkpoint (fixed ``target_p`` and
  ``checkpoint_hash``) while the configuration's P, R or C shrinks.

For the built-in ``gemm`` workload (a random GEMM, no trained weights) the "checkpoint hash" is
the hash of the workload's parameters, and the target P is 0 (not applicable).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from accel.config import ArrayConfig

__all__ = ["PointSpec", "KEY_FIELDS", "NO_TARGET_P", "DEFAULT_ENERGY", "digest"]

#: Columns of the store's unique key, in order (also the order of :attr:`PointSpec.key`).
KEY_FIELDS = ("config_hash", "model", "quantizer", "act_bits", "weight_bits", "target_p",
              "checkpoint_hash")

#: ``PointSpec.energy`` for the shipped 45 nm energy table (:func:`sim.energy.load_table`).
DEFAULT_ENERGY = "default"

#: ``target_p`` of a point whose weights were not trained for a P (float or random weights).
NO_TARGET_P = 0


def digest(data: bytes | dict[str, Any]) -> str:
    """12-hex-digit SHA-256 of raw bytes, or of a JSON-able dict (keys sorted)."""
    if isinstance(data, dict):
        data = json.dumps(data, sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()[:12]


@dataclass(frozen=True, kw_only=True)
class PointSpec:
    """Everything a worker needs to evaluate one point (picklable, no open resources).

    Attributes
    ----------
    config : ArrayConfig
        The array (R, C, N, M, P, Q, overflow mode, accumulator depth, OverQ).
    model : str
        Workload name: ``"gemm"`` or the ``model`` of a checkpoint (e.g. ``"cnn"``, ``"mlp"``).
    quantizer : str
        Quantizer the checkpoint was trained with (``"none"`` for the ``gemm`` workload).
    target_p : int
        P the checkpoint was trained for, in bits (:data:`NO_TARGET_P` when not applicable).
    checkpoint : str or None
        Path of the integer-layer checkpoint (None for ``gemm``).
    checkpoint_hash : str
        Hash of the checkpoint file's bytes (or of the ``gemm`` parameters).
    options : dict
        Workload parameters (``gemm``: ``t``, ``k``, ``o``, ``dist``, ``seed``, ``bias``;
        checkpointed models: ``float_accuracy``, the float model's test accuracy from the
        catalog, or None).
    adversarial : bool
        Also run adversarial inputs (each input code at the extreme that maximises, then
        minimises, each channel's partial sums) and count their overflow events.
    synth : str or None
        Synthesis target (``"generic"``, ``"ice40"``, ...) for the area columns, or None.
    energy : str or None
        Energy table for the energy columns (:data:`DEFAULT_ENERGY` or a TOML path), or None.
    split : str
        Dataset split the accuracy is measured on (``"test"``).
    """

    config: ArrayConfig
    model: str
    quantizer: str = "none"
    target_p: int = NO_TARGET_P
    checkpoint: str | None = None
    checkpoint_hash: str = ""
    options: dict[str, Any] = field(default_factory=dict, compare=False)
    adversarial: bool = True
    synth: str | None = None
    energy: str | None = None
    split: str = "test"

    @property
    def key(self) -> tuple[str, str, str, int, int, int, str]:
        """The store's unique key of this point (see :data:`KEY_FIELDS`)."""
        c = self.config
        return (c.hash, self.model, self.quantizer, c.act_bits, c.weight_bits, self.target_p,
                self.checkpoint_hash)

    @property
    def label(self) -> str:
        """Short human label, e.g. ``cnn a2q P=16 (ckpt P=16) 8x8``."""
        c = self.config
        ckpt = f" (ckpt P={self.target_p})" if self.target_p != NO_TARGET_P else ""
        oq = "" if c.overq is None else f" overq {c.overq.mode} c={c.overq.cascade}"
        return (f"{self.model} {self.quantizer} P={c.pe_acc_bits}{ckpt} {c.rows}x{c.cols} "
                f"{c.overflow}{oq}")
