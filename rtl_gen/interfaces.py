"""Shapes, layouts and the flat top-level port table, all built from one :class:`ArrayConfig`.

The port table is the single description of the top level's ports (SPEC section 3): the
:class:`rtl_gen.top.Top` signature and the manifest are both generated from it, so they agree by
construction.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Shape, signed
from amaranth.lib import data

from accel.config import ArrayConfig, ConfigError

__all__ = ["check_rtl_config", "act_shape", "TAG_BITS", "EncodedLaneLayout", "lane_shape",
           "ActLayout", "PsumLayout", "LoadLayout", "CtrlLayout",
           "EntryLayout", "ResultLayout", "Port", "port_table"]


def check_rtl_config(config: object) -> ArrayConfig:
    """Return ``config`` if the RTL generator can build it, else raise :class:`ConfigError`.

    Every valid :class:`ArrayConfig` can be built, OverQ included (:class:`ArrayConfig` itself
    refuses what SPEC section 4 forbids, e.g. OverQ with signed activations).
    """
    if not isinstance(config, ArrayConfig):
        raise ConfigError(f"config must be an accel.ArrayConfig, not {type(config).__name__}")
    return config


def act_shape(config: ArrayConfig) -> Shape:
    """Shape of one activation lane: N bits, signed or unsigned as declared."""
    return Shape(config.act_bits, config.act_signed)


TAG_BITS = 2  #: width of an encoded lane's :class:`accel.overq.LaneTag`


class EncodedLaneLayout(data.StructLayout):
    """One OverQ-encoded lane (SPEC section 4): ``value`` unsigned N bits and ``tag`` 2 bits, the
    :class:`accel.overq.LaneTag` saying which weight it multiplies and how it is aligned."""

    def __init__(self, config: ArrayConfig):
        super().__init__({"value": config.act_bits, "tag": TAG_BITS})


def lane_shape(config: ArrayConfig):
    """What one lane of the mesh input carries: :func:`act_shape`, or with OverQ an
    :class:`EncodedLaneLayout`."""
    return act_shape(config) if config.overq is None else EncodedLaneLayout(config)


class ActLayout(data.StructLayout):
    """An activation moving right through a PE row, with the weight bank it must use.

    ``value``: N-bit activation code; with OverQ also ``tag`` (2 bits, the encoded lane's
    :class:`accel.overq.LaneTag`); ``bank``: 1 bit, the weight (and bias) bank of the beat.
    """

    def __init__(self, config: ArrayConfig):
        if config.overq is None:
            super().__init__({"value": act_shape(config), "bank": 1})
        else:
            super().__init__({"value": config.act_bits, "tag": TAG_BITS, "bank": 1})


class PsumLayout(data.StructLayout):
    """A partial sum moving down a PE column: ``value`` signed P bits, ``ovf`` 1 bit (sticky over
    the rows of this fold: some step of this fold left the P-bit range)."""

    def __init__(self, config: ArrayConfig):
        super().__init__({"value": signed(config.pe_acc_bits), "ovf": 1})


class LoadLayout(data.StructLayout):
    """A weight write into one PE: ``en`` 1 bit, ``bank`` 1 bit, ``weight`` signed M bits."""

    def __init__(self, config: ArrayConfig):
        super().__init__({"en": 1, "bank": 1, "weight": signed(config.weight_bits)})


class CtrlLayout(data.StructLayout):
    """Control of an ``x`` beat travelling beside the mesh: accumulator ``addr``
    (``config.addr_bits``), ``init``, ``emit`` and the tile ``bank`` (1 bit each)."""

    def __init__(self, config: ArrayConfig):
        super().__init__({"addr": config.addr_bits, "init": 1, "emit": 1, "bank": 1})


class EntryLayout(data.StructLayout):
    """One accumulator memory word: C lanes of signed Q-bit ``data`` and the sticky flags
    ``pe_ovf``, ``acc_ovf`` (C bits each, bit c for lane c)."""

    def __init__(self, config: ArrayConfig):
        c = config.cols
        super().__init__({"data": data.ArrayLayout(signed(config.out_bits), c),
                          "pe_ovf": c, "acc_ovf": c})


class ResultLayout(data.StructLayout):
    """The payload of a ``y`` beat: an accumulator snapshot and its address."""

    def __init__(self, config: ArrayConfig):
        c = config.cols
        super().__init__({"data": data.ArrayLayout(signed(config.out_bits), c),
                          "addr": config.addr_bits, "pe_ovf": c, "acc_ovf": c})


@dataclass(frozen=True)
class Port:
    """One flat top-level port.

    Attributes
    ----------
    name : str
        Verilog name, ``<stream>_<field>``.
    direction : {"in", "out"}
    width : int
        Bits.
    lanes : int
        Number of lanes packed in the port (1 for a scalar); lane i occupies bits
        ``i * lane_bits .. i * lane_bits + lane_bits - 1``.
    lane_bits : int
    signed : bool
        Whether each lane is a two's complement number.
    doc : str
    """

    name: str
    direction: str
    width: int
    lanes: int
    lane_bits: int
    signed: bool
    doc: str

    def to_dict(self) -> dict[str, object]:
        d = {"name": self.name, "direction": self.direction, "width": self.width, "doc": self.doc}
        if self.lanes > 1 or self.lane_bits != self.width:
            d["layout"] = {"lanes": self.lanes, "lane_bits": self.lane_bits, "signed": self.signed,
                           "lane_lsb": [i * self.lane_bits for i in range(self.lanes)]}
        elif self.signed:
            d["signed"] = True
        return d


def _lanes(name: str, direction: str, lanes: int, bits: int, is_signed: bool, doc: str) -> Port:
    return Port(name, direction, lanes * bits, lanes, bits, is_signed, doc)


def _bit(name: str, direction: str, doc: str) -> Port:
    return Port(name, direction, 1, 1, 1, False, doc)


def _x_data(config: ArrayConfig) -> Port:
    """``x_data``: R lanes of N-bit codes, or with OverQ of W-bit raw codes (SPEC section 4)."""
    r, n = config.rows, config.act_bits
    if config.overq is None:
        return _lanes("x_data", "in", r, n, config.act_signed,
                      "activation vector; lane r: row f*R + r")
    f = config.frac_bits
    return _lanes("x_data", "in", r, config.lane_bits, False,
                  f"OverQ raw activation codes; lane r: row f*R + r, integer part "
                  f"({config.lane_bits - f} bits) << {f} | fraction ({f} bits)")


def port_table(config: ArrayConfig) -> list[Port]:
    """Every top-level port in SPEC section 3 order, ``clk`` and ``rst`` first."""
    check_rtl_config(config)
    c = config.cols
    m, q, a = config.weight_bits, config.out_bits, config.addr_bits
    return [
        _bit("clk", "in", "clock; everything is synchronous to its rising edge"),
        _bit("rst", "in", "synchronous active-high reset"),
        _bit("w_valid", "in", "weight row beat valid"),
        _bit("w_ready", "out", "weight row beat ready"),
        _lanes("w_data", "in", c, m, True, "weight row k = f*R + i of a tile; lane c: column g*C + c"),
        _bit("w_last", "in", "1 exactly on beat R - 1 of a tile"),
        _bit("b_valid", "in", "bias beat valid"),
        _bit("b_ready", "out", "bias beat ready"),
        _lanes("b_data", "in", c, q, True, "bias of the tile's C output lanes"),
        _bit("x_valid", "in", "activation beat valid"),
        _bit("x_ready", "out", "activation beat ready"),
        _x_data(config),
        Port("x_addr", "in", a, 1, a, False, "accumulator entry of the beat"),
        _bit("x_first", "in", "the beat activates the shadow tile and bias"),
        _bit("x_init", "in", "acc[x_addr] := op_Q(bias + s), else op_Q(acc[x_addr] + s)"),
        _bit("x_emit", "in", "send acc[x_addr] and its flags, after this update, on y"),
        _bit("y_valid", "out", "result beat valid"),
        _bit("y_ready", "in", "result beat ready"),
        _lanes("y_data", "out", c, q, True, "accumulator snapshot of the C output lanes"),
        Port("y_addr", "out", a, 1, a, False, "x_addr of the emitting beat"),
        _lanes("y_pe_ovf", "out", c, 1, False, "bit c: some PE step of lane c overflowed P bits"),
        _lanes("y_acc_ovf", "out", c, 1, False,
               "bit c: some accumulator step of lane c overflowed Q bits"),
    ]
