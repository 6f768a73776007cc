"""Formal harness of the mesh (:class:`rtl_gen.mesh.Mesh`): a whole fold through R rows.

``mesh.fold`` (unbounded, k-induction), for every sequence of activation vectors, bank bits and
weight row loads:

* **wavefront**: the vector that enters on edge e reaches PE (r, c) on edge e + 1 + r + c (the
  skew of :mod:`accel.timing`): that PE's activation input is lane r of the vector (value, and
  with OverQ the tag) with the vector's bank bit;
* **banks**: every PE's two weight banks hold the weights last loaded into them;
* **fold**: column c's result, R + C edges after the vector entered (the mesh's share of
  ``mesh_delay``), is the SPEC section 2 fold ``s = op_P(s + term_r)``, r = 0 .. R - 1, from
  s = 0, and its flag is the OR of the R steps' events (row 0 starts from a zero sum and a clear
  flag, SPEC section 3). ``term_r`` is ``x[r] · w``, or with OverQ the SPEC section 4 lane term
  (the upstream weight of row r being row r - 1's, none for row 0), with w the weight in the
  vector's bank when the wavefront passes PE (r, c): what lets the tile switch reopen row i of
  the shadow bank once PE (i, C - 1) has read it.

The reference multiplies the operands that the first two points identify (the PE's activation
input and the bank it selects), under the ``pe.product`` lemma, so the solver sees each PE's
multiplier once; the fold itself, its rails and its flag are the reference's own.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Const, Mux, Signal, signed

from accel.config import ArrayConfig
from accel.timing import encoder_stages, timing
from rtl_gen.formal.harness import (Embedded, Harness, elaborate, find_origin, find_signal, free,
                                    no_reset)
from rtl_gen.formal.pe import assume_product, lane_term
from rtl_gen.formal.reference import op_ref, produced_tags, shift_add_product

__all__ = ["fold_harness", "mesh_delay"]


def mesh_delay(config: ArrayConfig) -> int:
    """Edges from a vector on the mesh input to its fold results on ``psum``: R + C, the
    ``mesh_delay`` of :func:`accel.timing.timing` less the encoder stages in front."""
    return timing(config).mesh_delay - encoder_stages(config)


def _can_overflow(config: ArrayConfig) -> bool:
    """Whether some fold of R steps can leave the P-bit range (R times the largest term
    magnitude beyond the rail; with OverQ a term is at most a raw lane code times a weight)."""
    xlo, xhi = config.lane_range
    wlo, whi = config.weight_range
    most = max(abs(xlo), abs(xhi)) * max(abs(wlo), abs(whi))
    return config.rows * most > config.pe_range[1]


def _delayed(m, value, edges: int, name: str) -> Any:
    """``value`` as it was ``edges`` edges ago (a chain of datapath registers)."""
    for k in range(edges):
        reg = Signal.like(value, name=f"{name}_d{k + 1}", reset_less=True)
        m.d.sync += reg.eq(value)
        value = reg
    return value


def fold_harness(config: ArrayConfig, dut: Any = None) -> Harness:
    """``mesh.fold``: wavefront, banks and fold results of the mesh (module doc).

    Parameters
    ----------
    config : ArrayConfig
    dut : Mesh or Fragment, optional
        Test hook for fault injection (see :func:`rtl_gen.formal.pe.step_harness`).
    """
    from rtl_gen.interfaces import lane_shape
    from rtl_gen.mesh import Mesh
    from rtl_gen.pe import PE

    mesh, frag = elaborate(Mesh(config) if dut is None else dut)
    rows, cols, p, mw = config.rows, config.cols, config.pe_acc_bits, config.weight_bits
    overq = config.overq is not None
    delay = mesh_delay(config)
    h = Harness("mesh", "fold", config, mode="prove", depth=delay + 2,
                depth_reason="k-induction, mesh delay R + C + 2",
                cover_depth=rows + delay + 2)  # R row loads, then a vector through the mesh
    h.relies_on += ["pe.product"] + (["overq-encoder.encode"] if overq else [])
    m = h.module
    no_reset(m)
    m.submodules.mesh = Embedded(frag)

    # free inputs on every edge: a vector (its fold checked when `valid`) and a weight row load
    valid = free(m, 1, "valid")
    lanes = [free(m, lane_shape(config), f"x{r}") for r in range(rows)]
    bank = free(m, 1, "bank")
    load_en, load_bank = free(m, 1, "load_en"), free(m, 1, "load_bank")
    load_sel = free(m, range(max(2, rows)), "load_row_sel")
    load_row = [free(m, signed(mw), f"load_w{c}") for c in range(cols)]
    m.d.comb += [mesh.act[r].eq(lanes[r]) for r in range(rows)]
    m.d.comb += [mesh.bank.eq(bank), mesh.load_en.eq(load_en), mesh.load_bank.eq(load_bank),
                 mesh.load_sel.eq(load_sel)]
    m.d.comb += [mesh.load_row[c].eq(load_row[c]) for c in range(cols)]
    h.assume(load_sel < rows, "a weight row load selects an existing row")
    if overq:
        legal = produced_tags(config)
        for r in range(rows):
            test = lanes[r].tag == legal[0]
            for t in legal[1:]:
                test = test | (lanes[r].tag == t)
            h.assume(test, "lanes carry only the tags the OverQ mode produces (proven of the "
                     "encoder by overq-encoder.encode)")
        h.assume(lanes[0].tag == legal[0],
                 "row 0 takes nothing from above (the encoder's lane 0 is always OWN)")

    pes = [[find_origin(frag, (f"pe_{r}_{c}",), PE) for c in range(cols)] for r in range(rows)]
    banks = [[[find_signal(sub, f"weight{b}", f"weight bank {b} of PE ({r}, {c})")
               for b in (0, 1)] for c, (_, sub) in enumerate(row)] for r, row in enumerate(pes)]

    # banks: the weight last loaded, per PE and bank
    for r in range(rows):
        for c in range(cols):
            for b in (0, 1):
                ref = Signal(signed(mw), name=f"ref_w{r}_{c}_b{b}", reset_less=True)
                with m.If(load_en & (load_sel == r) & (load_bank == b)):
                    m.d.sync += ref.eq(load_row[c])
                h.check("banks", banks[r][c][b] == ref,
                        "every PE's weight banks hold the weights last loaded into them")

    # wavefront: PE (r, c) sees lane r and the bank of the vector that entered 1 + r + c edges ago
    for r in range(rows):
        for c in range(cols):
            pe = pes[r][c][0]
            x_then = _delayed(m, lanes[r], 1 + r + c, f"x{r}_pe{c}")
            bank_then = _delayed(m, bank, 1 + r + c, f"bank_r{r}_pe{c}")
            same = pe.act_in.bank == bank_then
            if overq:
                same = same & (pe.act_in.value == x_then.value) & (pe.act_in.tag == x_then.tag)
            else:
                same = same & (pe.act_in.value == x_then)
            h.check("wavefront", same, "PE (r, c) receives lane r and the bank bit of the vector "
                    "that entered 1 + r + c edges earlier")

    # the term each PE adds, from its operands, carried to the edge the fold leaves the mesh
    terms = [[None] * cols for _ in range(rows)]
    for r in range(rows):
        for c in range(cols):
            pe = pes[r][c][0]
            own = Signal(signed(mw), name=f"w{r}_{c}")
            m.d.comb += own.eq(Mux(pe.act_in.bank, banks[r][c][1], banks[r][c][0]))
            if overq:
                up = Signal(signed(mw), name=f"wup{r}_{c}")
                if r:
                    m.d.comb += up.eq(Mux(pe.act_in.bank, banks[r - 1][c][1], banks[r - 1][c][0]))
                term = lane_term(m, config, pe.act_in.value, pe.act_in.tag, own, up, f"t{r}_{c}")
            else:
                term = shift_add_product(m, pe.act_in.value, own, f"t{r}_{c}")
                assume_product(m, pe.act_in.value, own, term)
            # computed on edge e + 1 + r + c, needed on edge e + R + C
            terms[r][c] = _delayed(m, term, delay - 1 - r - c, f"t{r}_{c}")

    # fold: the SPEC order over the rows, checked for vectors marked valid
    out_valid = _delayed(m, valid, delay, "valid")
    out_bank = _delayed(m, bank, delay, "bank_out")
    for c in range(cols):
        s, flag = Const(0, signed(p)), Const(0, 1)
        for r in range(rows):
            s, event = op_ref(m, s + terms[r][c], p, config.overflow, f"s{r + 1}_{c}")
            flag = flag | event
        want_flag = Signal(name=f"want_ovf{c}")
        m.d.comb += want_flag.eq(flag)
        shows_v = (h.probe(mesh.psum[c], f"psum out col {c}"), h.probe(s, f"expected psum col {c}"))
        shows_f = (h.probe(mesh.ovf[c], f"ovf out col {c}"),
                   h.probe(want_flag, f"expected ovf col {c}"))
        h.check("psum", mesh.psum[c] == s, f"column c's fold result is the R-step op_P fold, "
                f"{delay} edges after its vector", when=out_valid, shows=shows_v)
        h.check("ovf", mesh.ovf[c] == want_flag,
                "column c's flag is the OR of the fold's R overflow events", when=out_valid,
                shows=shows_f)
        h.cover(f"fold_col{c}", out_valid & out_bank & (s < 0),
                f"a negative fold result from bank 1 in column {c}")
        if _can_overflow(config):
            h.cover(f"ovf_col{c}", out_valid & want_flag, f"an overflowing fold in column {c}")
    for r in range(rows):
        h.probe(lanes[r].value if overq else lanes[r], f"x lane {r}")
    h.probe(bank, "bank")
    h.probe(valid, "checked vector")
    h.finish()
    return h
