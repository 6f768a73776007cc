"""The R x C mesh of PEs with its input skew and output de-skew.

Timing (clock edges, the vector presented on ``act`` being latched on edge e): lane r is delayed
by r + 1 registers, so PE (r, c) latches its partial sum on edge e + 1 + r + c; column c is then
delayed by C - 1 - c more registers, so all C fold results appear together on ``psum`` right after
edge e + R + C - 1, to be consumed on edge e + ``timing(config).mesh_delay``.

With OverQ the lanes are encoded lanes (value and tag,
:class:`rtl_gen.interfaces.EncodedLaneLayout`) from :class:`rtl_gen.overq_encoder.OverQEncoder`,
and each PE also reads both weight banks of the PE directly above it (row 0 has none: it reads
zeros). The mesh's own timing is unchanged; the encoder's register stage comes before ``act``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from accel.config import ArrayConfig
from rtl_gen.interfaces import ActLayout, PsumLayout, check_rtl_config, lane_shape
from rtl_gen.pe import PE

__all__ = ["Mesh"]


class Mesh(wiring.Component):
    """R x C weight-stationary mesh: activations move right, partial sums move down.

    Parameters
    ----------
    config : ArrayConfig

    Attributes
    ----------
    act : ArrayLayout(N bits, R), in
        The activation vector of the beat (lane r for row r), sampled every edge; with OverQ an
        ArrayLayout(EncodedLaneLayout, R) of encoded lanes.
    bank : 1 bit, in
        Weight bank of that beat; it travels with the wavefront.
    load_row : ArrayLayout(signed M bits, C), in
        Weight row written into row ``load_sel`` of bank ``load_bank`` when ``load_en`` is 1.
    load_sel : range(max(2, R)), in
    load_bank, load_en : 1 bit, in
    psum : ArrayLayout(signed P bits, C), out
        Fold results of the beat presented ``mesh_delay - 1`` edges earlier, de-skewed.
    ovf : C bits, out
        Bit c: some PE step of lane c's fold overflowed P bits.
    """

    def __init__(self, config: ArrayConfig):
        self.config = check_rtl_config(config)
        r, c = config.rows, config.cols
        super().__init__({
            "act": In(data.ArrayLayout(lane_shape(config), r)),
            "bank": In(1),
            "load_row": In(data.ArrayLayout(signed(config.weight_bits), c)),
            "load_sel": In(range(max(2, r))),  # >= 1 bit wide
            "load_bank": In(1),
            "load_en": In(1),
            "psum": Out(data.ArrayLayout(signed(config.pe_acc_bits), c)),
            "ovf": Out(c),
        })

    def elaborate(self, platform):
        cfg = self.config
        rows, cols = cfg.rows, cfg.cols
        m = Module()
        act_layout = ActLayout(cfg)

        # input skew: lane r goes through r + 1 registers; the bank bit through one shared chain
        # tapped at depth r + 1
        bank_chain = [Signal(name=f"bank_d{d}", reset_less=True) for d in range(1, rows + 1)]
        m.d.sync += bank_chain[0].eq(self.bank)
        for d in range(1, rows):
            m.d.sync += bank_chain[d].eq(bank_chain[d - 1])
        lane_in = []
        for r in range(rows):
            prev = self.act[r]
            for d in range(r + 1):
                reg = Signal(lane_shape(cfg), name=f"skew{r}_d{d + 1}", reset_less=True)
                m.d.sync += reg.eq(prev)
                prev = reg
            lane = Signal(act_layout, name=f"lane{r}")
            if cfg.overq is None:
                m.d.comb += lane.value.eq(prev)
            else:
                m.d.comb += [lane.value.eq(prev.value), lane.tag.eq(prev.tag)]
            m.d.comb += lane.bank.eq(bank_chain[r])
            lane_in.append(lane)

        # the PE grid
        pes = [[PE(cfg) for _ in range(cols)] for _ in range(rows)]
        for r in range(rows):
            for c in range(cols):
                pe = pes[r][c]
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += pe.act_in.eq(lane_in[r] if c == 0 else pes[r][c - 1].act_out)
                if r > 0:  # row 0 adds to a zero partial sum (psum_in's initial value)
                    m.d.comb += pe.psum_in.eq(pes[r - 1][c].psum_out)
                    if cfg.overq is not None:  # the weights of the PE directly above
                        m.d.comb += pe.up_weights.eq(pes[r - 1][c].weights)
                m.d.comb += [
                    pe.load.en.eq(self.load_en & (self.load_sel == r)),
                    pe.load.bank.eq(self.load_bank),
                    pe.load.weight.eq(self.load_row[c]),
                ]

        # output de-skew: column c waits C - 1 - c more edges for the last column
        for c in range(cols):
            prev = pes[rows - 1][c].psum_out
            for d in range(cols - 1 - c):
                reg = Signal(PsumLayout(cfg), name=f"deskew{c}_d{d + 1}", reset_less=True)
                m.d.sync += reg.eq(prev)
                prev = reg
            m.d.comb += [self.psum[c].eq(prev.value), self.ovf[c].eq(prev.ovf)]
        return m
