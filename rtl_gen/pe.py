"""One processing element of the weight-stationary mesh.

A PE holds two weight banks (the active tile and the shadow tile being loaded), multiplies the
activation arriving from the left by the weight of the bank that activation carries (the exact
N x M-bit product), adds the partial sum arriving from above in P bits (wrap or saturate), and
passes the activation right and the partial sum (with its sticky overflow flag) down, one
register each.

With OverQ (SPEC section 4) the activation is an encoded lane (N-bit value and a
:class:`accel.overq.LaneTag`). The PE also reads the two weight banks of the PE directly above it
(``up_weights``, the same column) and uses the one of its activation's tile, and aligns the term
in accumulator units (2^-F activation steps) with a constant shift per tag
(:func:`accel.overq.tag_shifts`): OWN ``(value * w) << F``, UP ``(value * w_up) << F``,
UP_HIGH ``(value * w_up) << (N + F)``, FRAC ``value * w_up``. Only the tags the configuration can
produce are built (:func:`rtl_gen.overq_encoder.lane_tags`). A term fits W + M <= P bits.
"""

from __future__ import annotations

from functools import lru_cache

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from accel.arith import signed_range
from accel.config import ArrayConfig
from accel.overq import LaneTag, tag_shifts
from rtl_gen.interfaces import ActLayout, LoadLayout, PsumLayout, check_rtl_config
from rtl_gen.overq_encoder import lane_tags

__all__ = ["PE", "op_bits"]


def op_bits(m: Module, total, bits: int, mode: str):
    """op_B of SPEC section 2 on ``total`` (a signed value that fits ``bits + 1`` bits).

    Returns ``(result, overflow)``: the signed ``bits``-bit result (wrapped or clamped) and a
    1-bit flag, high when the exact value lies outside the ``bits``-bit range. Overflow is read
    from the two top bits, which is exact because ``total`` fits ``bits + 1`` bits.
    """
    wide = Signal(signed(bits + 1))
    result = Signal(signed(bits))
    overflow = Signal()
    m.d.comb += [wide.eq(total), overflow.eq(wide[bits] ^ wide[bits - 1])]
    if mode == "saturate":
        lo, hi = signed_range(bits)
        m.d.comb += result.eq(Mux(overflow, Mux(wide[bits], lo, hi), wide[:bits]))
    else:
        m.d.comb += result.eq(wide[:bits])
    return result, overflow


@lru_cache(maxsize=16)
def _signature(config: ArrayConfig) -> wiring.Signature:
    """The PE's signature, built once per configuration (a mesh has R x C identical PEs)."""
    act, psum = ActLayout(config), PsumLayout(config)
    members = {
        "act_in": In(act), "act_out": Out(act),
        "psum_in": In(psum), "psum_out": Out(psum),
        "load": In(LoadLayout(config)),
    }
    if config.overq is not None:
        banks = data.ArrayLayout(signed(config.weight_bits), 2)
        members.update(up_weights=In(banks), weights=Out(banks))
    return wiring.Signature(members)


class PE(wiring.Component):
    """A weight-stationary PE with a shadow weight bank.

    Parameters
    ----------
    config : ArrayConfig
        N, signedness, M, P, the overflow mode and OverQ (mode, cascade) are used.

    Attributes
    ----------
    act_in, act_out : ActLayout
        Activation (N bits) and its bank bit, from the left / to the right (registered).
    psum_in, psum_out : PsumLayout
        Partial sum (signed P bits) and overflow flag, from above / downwards (registered).
    load : LoadLayout
        Writes ``weight`` (signed M bits) into bank ``bank`` on the clock edge where ``en`` is 1.
    up_weights : ArrayLayout(signed M bits, 2), in (OverQ only)
        Both weight banks of the PE directly above (0 in row 0, which has none).
    weights : ArrayLayout(signed M bits, 2), out (OverQ only)
        This PE's two weight banks, for the PE below.
    """

    def __init__(self, config: ArrayConfig):
        self.config = check_rtl_config(config)
        super().__init__(_signature(config))

    def elaborate(self, platform):
        cfg = self.config
        m = Module()

        # two weight banks: datapath state, not reset
        banks = [Signal(signed(cfg.weight_bits), name=f"weight{i}", reset_less=True) for i in (0, 1)]
        for i, bank in enumerate(banks):
            with m.If(self.load.en & (self.load.bank == i)):
                m.d.sync += bank.eq(self.load.weight)

        # exact product with the weight of the beat's own tile; the sum fits P + 1 bits since a
        # product fits N + M <= P bits (an OverQ term W + M <= P bits)
        weight = Mux(self.act_in.bank, banks[1], banks[0])
        if cfg.overq is None:
            product = self.act_in.value * weight
        else:
            product = self._overq_term(m, weight, banks)
        psum, overflow = op_bits(m, self.psum_in.value + product, cfg.pe_acc_bits, cfg.overflow)

        # pipeline registers are datapath: not reset (control travels beside the mesh)
        act_reg = Signal.like(self.act_out, name="act_reg", reset_less=True)
        psum_reg = Signal.like(self.psum_out, name="psum_reg", reset_less=True)
        m.d.sync += [
            act_reg.eq(self.act_in),
            psum_reg.value.eq(psum),
            psum_reg.ovf.eq(self.psum_in.ovf | overflow),
        ]
        m.d.comb += [self.act_out.eq(act_reg), self.psum_out.eq(psum_reg)]
        return m

    def _overq_term(self, m: Module, weight, banks):
        """The lane term of an OverQ-encoded activation, in accumulator units (module doc)."""
        cfg = self.config
        m.d.comb += [self.weights[i].eq(bank) for i, bank in enumerate(banks)]
        up = Mux(self.act_in.bank, self.up_weights[1], self.up_weights[0])
        # own weight for OWN, the upstream PE's for every other tag; one multiplier
        factor = Mux(self.act_in.tag == LaneTag.OWN, weight, up)
        product = Signal(signed(cfg.act_bits + cfg.weight_bits), name="product")
        m.d.comb += product.eq(self.act_in.value * factor)
        shifts = tag_shifts(cfg)
        term = Signal(signed(cfg.lane_bits + cfg.weight_bits), name="term")
        *tags, last = lane_tags(cfg)
        with m.Switch(self.act_in.tag):
            for tag in tags:
                with m.Case(tag):
                    m.d.comb += term.eq(product << int(shifts[tag]))
            with m.Default():  # the last tag produced; the encoder sends no other
                m.d.comb += term.eq(product << int(shifts[last]))
        return term
