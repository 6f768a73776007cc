"""Beat records: each stream's beat as one packed word, the one beat encoding of the testbenches.

A record holds one beat's fields, LSB first, in the order of :data:`RECORD_FIELDS`, each as wide
as its port in the manifest (so the widths and lane layouts are the design's, never a second
formula). Written as a Verilog concatenation, MSB first:

* ``w``: ``{w_last, w_data}``
* ``b``: ``{b_data}``
* ``x``: ``{x_emit, x_init, x_first, x_addr, x_data}``
* ``y``: ``{y_acc_ovf, y_pe_ovf, y_addr, y_data}``

Two carriers use the same records: hex text, one record a line (``$readmemh``, the example
Verilog testbench :mod:`sim.tb.example`), and binary, each record in ``words`` little-endian
32-bit words, the bits above the record zero (the compiled co-simulation harness
:mod:`sim.cosim`, whose C++ field accessors are generated from this layout).

Example::

    layout = RecordLayout(manifest)
    rec = layout.beat_records(beats(x, w, bias, config))     # {"w": uint32 [n_w, words], ...}
    y = layout.unpack("y", y_records)                         # {"y_data": int64 [n_y, C], ...}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.schedule import WORD_BITS, Beats, get_bits, put_bits
from sim.tb.harness import port_widths

__all__ = ["RECORD_FIELDS", "WORD_BITS", "RecordField", "RecordLayout"]

#: Fields of each stream's record, LSB first.
RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "w": ("w_data", "w_last"),
    "b": ("b_data",),
    "x": ("x_data", "x_addr", "x_first", "x_init", "x_emit"),
    "y": ("y_data", "y_addr", "y_pe_ovf", "y_acc_ovf"),
}


@dataclass(frozen=True)
class RecordField:
    """One port inside a record: bits ``[offset, offset + lanes * lane_bits)``.

    Attributes
    ----------
    name : str
        Port name.
    offset : int
        Bit offset of lane 0 in the record.
    lanes, lane_bits : int
        Lane count and width (a port without a lane layout is one lane of its width).
    signed : bool
        Lanes read back as two's complement.
    """

    name: str
    offset: int
    lanes: int
    lane_bits: int
    signed: bool

    @property
    def width(self) -> int:
        """Port width in bits."""
        return self.lanes * self.lane_bits


class RecordLayout:
    """Bit layout of every stream's record for one design, built from its manifest.

    Attributes
    ----------
    fields : dict of str to tuple of RecordField
        Per stream (``w``, ``b``, ``x``, ``y``), LSB first.
    bits, words : dict of str to int
        Record width in bits and in 32-bit words, per stream.
    """

    def __init__(self, manifest: dict[str, Any]) -> None:
        widths = port_widths(manifest)
        layouts = {p["name"]: p.get("layout") for p in manifest["ports"]} \
            if isinstance(manifest.get("ports"), list) else {}
        self.fields: dict[str, tuple[RecordField, ...]] = {}
        self.bits: dict[str, int] = {}
        self.words: dict[str, int] = {}
        for stream, names in RECORD_FIELDS.items():
            off, fields = 0, []
            for name in names:
                if name not in widths:
                    raise ValueError(f"design has no port {name!r}; the {stream} record needs "
                                     f"{', '.join(names)} (SPEC section 3)")
                width = widths[name][1]
                lay = layouts.get(name) or {"lanes": 1, "lane_bits": width, "signed": False}
                lanes, lane_bits = int(lay["lanes"]), int(lay["lane_bits"])
                if lanes * lane_bits != width:
                    raise ValueError(f"port {name}: {lanes} lanes of {lane_bits} bits do not "
                                     f"make its width of {width} bits")
                fields.append(RecordField(name, off, lanes, lane_bits, bool(lay["signed"])))
                off += width
            self.fields[stream] = tuple(fields)
            self.bits[stream] = off
            self.words[stream] = max(1, -(-off // WORD_BITS))

    def field(self, name: str) -> RecordField:
        """The field of port ``name`` (in whichever stream's record holds it)."""
        for fields in self.fields.values():
            for f in fields:
                if f.name == name:
                    return f
        raise KeyError(f"no record field {name!r}")

    # --- binary ----------------------------------------------------------------------------
    def pack(self, stream: str, values: dict[str, Any]) -> np.ndarray:
        """Records of ``stream`` from per-field values: uint32 ``[n, words]``.

        ``values[name]`` is int ``[n, lanes]`` (or ``[n]`` for a one-lane field), each lane
        reduced modulo 2^lane_bits. Vectorised per lane.
        """
        n = None
        out = None
        for f in self.fields[stream]:
            v = np.asarray(values[f.name])
            v = v.reshape(-1, 1) if v.ndim == 1 else v
            if v.shape[1] != f.lanes:
                raise ValueError(f"{f.name}: {v.shape[1]} lanes given, the port has {f.lanes}")
            if n is not None and v.shape[0] != n:
                raise ValueError(f"{f.name}: {v.shape[0]} beats, the other fields have {n}")
            if out is None:
                n = v.shape[0]
                out = np.zeros((n, self.words[stream]), dtype="<u4")
            u = np.ascontiguousarray(v, dtype=np.int64).view(np.uint64)
            for c in range(f.lanes):
                put_bits(out, u[:, c], f.offset + c * f.lane_bits, f.lane_bits)
        return out

    def unpack(self, stream: str, records: np.ndarray) -> dict[str, np.ndarray]:
        """Inverse of :meth:`pack`: int64 ``[n, lanes]`` per field (two's complement where the
        port's lanes are signed)."""
        rec = np.asarray(records, dtype="<u4").reshape(-1, self.words[stream])
        return {f.name: np.stack([get_bits(rec, f.offset + c * f.lane_bits, f.lane_bits,
                                           f.signed) for c in range(f.lanes)], axis=1)
                for f in self.fields[stream]}

    def beat_records(self, bt: Beats) -> dict[str, np.ndarray]:
        """The ``w``, ``b`` and ``x`` records of a GEMM's canonical beats."""
        return {
            "w": self.pack("w", {"w_data": bt.w_lanes, "w_last": bt.w_last}),
            "b": self.pack("b", {"b_data": bt.b_lanes}),
            "x": self.pack("x", {"x_data": bt.x_lanes, "x_addr": bt.x_addr,
                                 "x_first": bt.x_first, "x_init": bt.x_init,
                                 "x_emit": bt.x_emit}),
        }

    def y_records(self, y: np.ndarray, addr: np.ndarray, pe_ovf: np.ndarray,
                  acc_ovf: np.ndarray) -> np.ndarray:
        """``y`` records of expected beats: lanes ``[n, C]``, ``addr [n]``, flags bool ``[n, C]``."""
        return self.pack("y", {"y_data": y, "y_addr": addr, "y_pe_ovf": pe_ovf,
                               "y_acc_ovf": acc_ovf})

    # --- hex -------------------------------------------------------------------------------
    def hex_text(self, stream: str, records: np.ndarray) -> str:
        """Records as ``$readmemh`` text: one record a line, MSB first, ``ceil(bits / 4)`` digits."""
        digits = max(1, -(-self.bits[stream] // 4))
        rec = np.ascontiguousarray(np.asarray(records, dtype="<u4"))
        mask = (1 << self.bits[stream]) - 1
        return "".join(f"{int.from_bytes(r.tobytes(), 'little') & mask:0{digits}x}\n"
                       for r in rec)
