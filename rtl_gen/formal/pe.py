"""Formal harnesses of one PE (:class:`rtl_gen.pe.PE`): its P-bit step, flag and weight banks.

Two proofs, both unbounded:

``pe.product`` (combinational: one step covers every operand)
    For every activation (N bits, the declared sign; with OverQ an unsigned N-bit lane value)
    and every signed M-bit weight, Amaranth's product ``a * w`` equals the shift-add product of
    :func:`rtl_gen.formal.reference.shift_add_product` (which fits N + M bits). A lemma about the
    multiplication the PE is built from, proven on its own because SAT solvers are slow at
    relating two different multiplier circuits inside a bigger proof.
``pe.step`` (k-induction)
    For every state and every input of their declared widths: each weight bank holds the weight
    last loaded into it; one edge after the inputs, ``psum_out`` is ``op_P(psum_in + term)`` with
    the reference rails and ``ovf_out`` is ``ovf_in | event`` (the flag OR-ed down the column,
    SPEC section 3); ``act_out`` is ``act_in``. The term is ``x · w[bank]``, or with OverQ the
    SPEC section 4 lane term of the lane's tag: own weight × value · 2^F, upstream weight ×
    value · 2^F, upstream weight × high part · 2^(N+F), upstream weight × fraction, with the
    weights of the activation's own bank. It assumes ``pe.product`` (the lemma is stated as an
    assumption on the PE's own multiplier operands, which is sound because ``pe.product`` proves
    it for every operand value) and, with OverQ, that lanes carry only the tags the mode can
    produce (what ``overq-encoder.encode`` proves of the encoder).
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Assume, Module, Mux, Shape, Signal, signed

from accel.config import ArrayConfig
from accel.overq import LaneTag
from rtl_gen.formal.harness import Embedded, Harness, elaborate, find_signal, free, no_reset
from rtl_gen.formal.reference import lane_shifts, op_ref, produced_tags, shift_add_product

__all__ = ["product_harness", "step_harness", "multiplicand_shape", "lane_term", "assume_product"]

#: Induction length of ``pe.step``: a bank load on one edge, its use on the next, the check on
#: the one after.
STEP_DEPTH = 3


def multiplicand_shape(config: ArrayConfig) -> Shape:
    """What a PE multiplies the weight with: the N-bit activation of the declared sign, or with
    OverQ the unsigned N-bit lane value."""
    return Shape(config.act_bits, config.act_signed and config.overq is None)


def product_harness(config: ArrayConfig) -> Harness:
    """``pe.product``: ``a * w`` equals the shift-add product for every operand (module doc)."""
    shape = multiplicand_shape(config)
    h = Harness("pe", "product", config, mode="comb", depth=1,
                depth_reason="combinational: one step covers every operand",
                folder=f"shared/pe.product-{'s' if shape.signed else 'u'}{shape.width}"
                       f"-m{config.weight_bits}")  # the same lemma for every P, Q, R, C
    m = h.module
    no_reset(m)
    a = free(m, multiplicand_shape(config), "a")
    w = free(m, signed(config.weight_bits), "w")
    product = shift_add_product(m, a, w, "product_ref")
    h.probe(a, "x")
    h.probe(w, "w")
    shows = (h.probe(a * w, "x * w"), h.probe(product, "shift-add x * w"))
    h.check("product", product == a * w,
            f"x * w equals the shift-add product for every x of {multiplicand_shape(config)} "
            f"and every signed {config.weight_bits}-bit w", shows=shows)
    lo, hi = config.weight_range
    h.cover("product_min_weight", w == lo, "the weight -2^(M-1) (the shift-add's negative bit)")
    h.finish()
    return h


def lane_term(m: Module, config: ArrayConfig, value, tag, own, up, name: str) -> Signal:
    """The OverQ lane term of SPEC section 4 in accumulator units, and the multiplier lemma's
    operands: ``(value · weight) << shift[tag]`` with the own weight for OWN and the upstream
    weight for every other tag. Returns the term (signed, W + M bits)."""
    weight = Signal(signed(config.weight_bits), name=f"{name}_weight")
    m.d.comb += weight.eq(Mux(tag == LaneTag.OWN, own, up))
    product = shift_add_product(m, value, weight, f"{name}_product")
    assume_product(m, value, weight, product)
    term = Signal(signed(config.lane_bits + config.weight_bits), name=name)
    shifts = lane_shifts(config)
    with m.Switch(tag):
        for t in produced_tags(config):
            with m.Case(t):
                m.d.comb += term.eq(product.shift_left(shifts[t]))
    return term


def assume_product(m: Module, a, w, product) -> None:
    """The ``pe.product`` lemma as an assumption: ``product`` (the shift-add of ``a`` and
    ``w``) equals ``a * w``. Sound for every operand value because ``pe.product`` proves it; it
    lets the solver treat the PE's multiplier and the reference's as one."""
    m.d.comb += Assume(product == a * w)


def step_harness(config: ArrayConfig, dut: Any = None) -> Harness:
    """``pe.step``: the PE's step, flag and banks against the reference (module doc).

    Parameters
    ----------
    config : ArrayConfig
    dut : PE or Fragment, optional
        Test hook for fault injection: the block to prove instead of ``PE(config)`` (a fragment
        elaborated from a PE and then altered); the proof must then fail.
    """
    from rtl_gen.pe import PE

    pe, frag = elaborate(PE(config) if dut is None else dut)
    mw, p = config.weight_bits, config.pe_acc_bits
    overq = config.overq is not None
    h = Harness("pe", "step", config, mode="prove", depth=STEP_DEPTH,
                depth_reason="k-induction: load, use, check")
    h.relies_on += ["pe.product"] + (["overq-encoder.encode"] if overq else [])
    m = h.module
    no_reset(m)
    m.submodules.pe = Embedded(frag)
    banks = [find_signal(frag, f"weight{i}", f"weight bank {i}") for i in (0, 1)]

    # free inputs, one value per edge
    x = free(m, multiplicand_shape(config), "x")
    bank = free(m, 1, "bank")
    psum_in = free(m, signed(p), "psum_in")
    ovf_in = free(m, 1, "ovf_in")
    load_en = free(m, 1, "load_en")
    load_bank = free(m, 1, "load_bank")
    load_w = free(m, signed(mw), "load_weight")
    m.d.comb += [
        pe.act_in.value.eq(x), pe.act_in.bank.eq(bank),
        pe.psum_in.value.eq(psum_in), pe.psum_in.ovf.eq(ovf_in),
        pe.load.en.eq(load_en), pe.load.bank.eq(load_bank), pe.load.weight.eq(load_w),
    ]

    # reference banks: the weight last loaded into each (datapath state: not reset)
    ref_banks = [Signal(signed(mw), name=f"ref_weight{i}", reset_less=True) for i in (0, 1)]
    for i, ref in enumerate(ref_banks):
        with m.If(load_en & (load_bank == i)):
            m.d.sync += ref.eq(load_w)
        h.check("bank", banks[i] == ref, "each weight bank holds the weight last loaded into it")

    # the term, from the PE's own banks (the bank property above ties them to the loads) so that
    # the solver sees the PE's multiplier and the reference's as one
    own = Signal(signed(mw), name="own_weight")
    m.d.comb += own.eq(Mux(bank, banks[1], banks[0]))
    if overq:
        tag = free(m, 2, "tag")
        up_banks = [free(m, signed(mw), f"up_weight{i}") for i in (0, 1)]
        m.d.comb += [pe.act_in.tag.eq(tag), pe.up_weights[0].eq(up_banks[0]),
                     pe.up_weights[1].eq(up_banks[1])]
        up = Signal(signed(mw), name="up_weight")
        m.d.comb += up.eq(Mux(bank, up_banks[1], up_banks[0]))
        legal = produced_tags(config)
        h.assume(_any_of(tag, legal), "lanes carry only the tags the OverQ mode produces "
                 f"({', '.join(t.name for t in legal)}; proven of the encoder by "
                 "overq-encoder.encode)")
        term = lane_term(m, config, x, tag, own, up, "term")
        for i in (0, 1):
            h.check("weights_out", pe.weights[i] == banks[i],
                    "the PE shows both its banks to the PE below")
    else:
        term = shift_add_product(m, x, own, "term")
        assume_product(m, x, own, term)

    result, event = op_ref(m, psum_in + term, p, config.overflow, "psum_ref")

    # expected outputs one edge later
    past = Signal(reset_less=True, name="past")
    want_psum = Signal(signed(p), reset_less=True, name="want_psum")
    want_ovf = Signal(reset_less=True, name="want_ovf")
    want_act = Signal.like(pe.act_in, name="want_act", reset_less=True)
    m.d.sync += [past.eq(1), want_psum.eq(result), want_ovf.eq(ovf_in | event),
                 want_act.eq(pe.act_in)]
    for sig, label in [(x, "x (activation in)"), (bank, "bank of x"), (psum_in, "psum in"),
                       (ovf_in, "ovf in"), (banks[0], "weight bank 0"), (banks[1], "weight bank 1"),
                       (load_en, "load"), (load_bank, "load bank"), (load_w, "load weight")]:
        h.probe(sig, label)
    if overq:
        h.probe(tag, "lane tag (0 OWN, 1 UP, 2 UP_HIGH, 3 FRAC)")
        h.probe(up, "upstream weight of the bank")
    psum_shows = (h.probe(pe.psum_out.value, "psum out"), h.probe(want_psum, "expected psum out"))
    ovf_shows = (h.probe(pe.psum_out.ovf, "ovf out"), h.probe(want_ovf, "expected ovf out"))
    h.check("psum", pe.psum_out.value == want_psum,
            f"psum_out = op_P(psum_in + term) one edge later (P = {p}, {config.overflow})",
            when=past, shows=psum_shows)
    h.check("ovf", pe.psum_out.ovf == want_ovf,
            "ovf_out = ovf_in | (the step left the P-bit range), one edge later",
            when=past, shows=ovf_shows)
    h.check("act", pe.act_out.as_value() == want_act.as_value(),
            "act_out (value, bank, tag) = act_in one edge later", when=past)
    # the cases the assertions are about must be reachable
    lo, hi = config.pe_range
    h.cover("event_high", event & (psum_in + term > hi) & ~ovf_in & bank,
            "a step above the P-bit range, from bank 1")
    h.cover("event_low", event & (psum_in + term < lo) & ~ovf_in, "a step below the P-bit range")
    h.cover("loaded_use", past & load_en & (load_bank == bank) & (load_w != 0),
            "a bank loaded with a non-zero weight on the edge it is used")
    if overq:
        for t in produced_tags(config):
            h.cover(f"tag_{t.name.lower()}", (tag == t) & (term != 0), f"a non-zero {t.name} term")
    h.finish()
    return h


def _any_of(value, options) -> Any:
    test = value == options[0]
    for opt in options[1:]:
        test = test | (value == opt)
    return test

