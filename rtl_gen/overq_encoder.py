"""The OverQ encoder at the array input: raw lane codes to N-bit lanes with weight tags.

SPEC section 4, bit for bit as :func:`accel.overq.encode`. The R raw lanes of an ``x`` beat
(W = ``config.lane_bits`` bits each: ``integer << F | fraction``, F = ``config.frac_bits``) and the
beat's bank bit are registered on the transfer edge (:data:`accel.timing.ENCODER_STAGES` = 1);
the encoding is then combinational, feeding the mesh's input skew.

Range overwrite is one pass over the lanes in increasing index, so the logic is a ripple of R
small cells. The state passed from lane k to lane k + 1 is

* ``left``: how many lanes from k on an earlier chain still covers (0 .. c + 1; a chain that
  starts at outlier k with its first free zero j lanes below covers lanes k + 1 .. k + j), and
* ``new``: lane k starts a chain (so lane k + 1 carries its high part).

Chains are disjoint intervals in increasing order, so the first zero below an uncovered lane is
always still free and the chain length j is just the distance to the next zero lane, when it is
at most c + 1. Precision overwrite then fills zeros that no chain touched.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from accel.config import ArrayConfig, ConfigError
from accel.overq import LaneTag
from rtl_gen.interfaces import TAG_BITS, EncodedLaneLayout, check_rtl_config

__all__ = ["OverQEncoder", "lane_tags"]


def lane_tags(config: ArrayConfig) -> tuple[LaneTag, ...]:
    """The tags the encoder can produce for ``config`` (the PE builds only these terms).

    OWN always; UP_HIGH with range overwrite; UP with range overwrite and cascade c >= 1 (a chain
    of length j >= 2 moves lanes); FRAC with precision overwrite.
    """
    oq = config.overq
    if oq is None:
        raise ConfigError("lane_tags needs an OverQ configuration, but config.overq is None")
    tags = [LaneTag.OWN]
    if oq.has_range and oq.cascade >= 1:
        tags.append(LaneTag.UP)
    if oq.has_range:
        tags.append(LaneTag.UP_HIGH)
    if oq.has_precision:
        tags.append(LaneTag.FRAC)
    return tuple(tags)


class OverQEncoder(wiring.Component):
    """Registers one fold of raw lane codes and encodes it (SPEC section 4).

    Parameters
    ----------
    config : ArrayConfig
        A configuration with OverQ: R, N, ``lane_bits`` W, ``frac_bits`` F, mode and cascade c.

    Attributes
    ----------
    raw : ArrayLayout(unsigned W bits, R), in
        Raw lane codes of the beat (lane r = row r of the fold), sampled every edge.
    bank_in : 1 bit, in
        Weight bank of that beat, registered beside the codes.
    lanes : ArrayLayout(EncodedLaneLayout, R), out
        Encoded lanes of the beat sampled on the previous edge: N-bit unsigned ``value`` and 2-bit
        ``tag`` (:class:`accel.overq.LaneTag`).
    bank_out : 1 bit, out
        The bank registered with them.
    """

    def __init__(self, config: ArrayConfig):
        self.config = check_rtl_config(config)
        if config.overq is None:
            raise ConfigError("OverQEncoder needs an OverQ configuration, but config.overq is None")
        r = config.rows
        super().__init__({
            "raw": In(data.ArrayLayout(config.lane_bits, r)),
            "bank_in": In(1),
            "lanes": Out(data.ArrayLayout(EncodedLaneLayout(config), r)),
            "bank_out": Out(1),
        })

    def elaborate(self, platform):
        cfg = self.config
        rows, n, f = cfg.rows, cfg.act_bits, cfg.frac_bits
        oq = cfg.overq
        reach = oq.cascade + 1
        top = (1 << n) - 1
        m = Module()

        # the input stage: datapath registers, not reset (the bank bit's validity travels with
        # the x beat's control beside the mesh)
        raw = Signal.like(self.raw, name="raw_reg", reset_less=True)
        bank = Signal(name="bank_reg", reset_less=True)
        m.d.sync += [raw.eq(self.raw), bank.eq(self.bank_in)]
        m.d.comb += self.bank_out.eq(bank)

        # per-lane decode of the raw code
        integer = [raw[k][f:] for k in range(rows)]           # N or 2N bits
        frac = [raw[k][:f] for k in range(rows)]              # F bits (empty without precision)
        zero = [Signal(name=f"zero{k}") for k in range(rows)]
        outlier = [Signal(name=f"outlier{k}") for k in range(rows)]
        clamped = [Signal(n, name=f"clamped{k}") for k in range(rows)]
        for k in range(rows):
            m.d.comb += [
                zero[k].eq(raw[k] == 0),
                outlier[k].eq(integer[k][n:].any() if oq.has_range else 0),
                clamped[k].eq(Mux(outlier[k], top, integer[k][:n])),
            ]

        # range overwrite: the ripple over lanes (see the module doc)
        inside = [Const(0)] * rows      # lane k lies in an earlier chain
        new = [Const(0)] * rows         # lane k is a handled outlier: starts a chain
        if oq.has_range:
            left = Const(0, range(reach + 1))
            for k in range(rows):
                # distance to the first zero lane below k within reach (reach + 1: none)
                dist = Signal(range(reach + 2), name=f"dist{k}")
                m.d.comb += dist.eq(reach + 1)
                for j in range(min(reach, rows - 1 - k), 0, -1):   # the smallest j wins
                    with m.If(zero[k + j]):
                        m.d.comb += dist.eq(j)
                inside[k] = Signal(name=f"inside{k}")
                new[k] = Signal(name=f"new{k}")
                m.d.comb += [
                    inside[k].eq(left != 0),
                    new[k].eq(outlier[k] & ~inside[k] & (dist <= reach)),
                ]
                next_left = Signal(range(reach + 1), name=f"left{k + 1}")
                m.d.comb += next_left.eq(Mux(new[k], dist, Mux(inside[k], left - 1, 0)))
                left = next_left
        touched = [Signal(name=f"touched{k}") for k in range(rows)]
        m.d.comb += [touched[k].eq(new[k] | inside[k]) for k in range(rows)]

        for k in range(rows):
            out = self.lanes[k]
            # an untouched lane keeps its integer part, clamped; a handled outlier its low part
            # (one statement for the whole lane: a lone constant tag would be a process that
            # reads nothing, which Verilator flags)
            m.d.comb += out.as_value().eq(Cat(Mux(new[k], integer[k][:n], clamped[k]),
                                              Const(LaneTag.OWN, TAG_BITS)))
            if k == 0:
                continue                # nothing crosses a fold: lane 0 is always its own
            if oq.has_precision:
                slot = (zero[k] & ~touched[k] & ~touched[k - 1] & ~zero[k - 1] & ~outlier[k - 1])
                with m.If(slot):
                    m.d.comb += [out.value.eq(frac[k - 1]), out.tag.eq(LaneTag.FRAC)]
            if oq.has_range:
                with m.If(new[k - 1]):      # the high part of the outlier above
                    m.d.comb += [out.value.eq(integer[k - 1][n:]), out.tag.eq(LaneTag.UP_HIGH)]
                with m.Elif(inside[k]):     # the original lane above, moved down one
                    m.d.comb += [out.value.eq(clamped[k - 1]), out.tag.eq(LaneTag.UP)]
        return m
