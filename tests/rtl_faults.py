"""Faults injected into the generated blocks, shared by the formal mutation tests and the
co-simulation fault tests: one implementation of each fault, applied to a block's elaborated
fragment (or, for a saturation rail, to the generator function via pytest's ``monkeypatch``).

A rewrite that finds nothing to rewrite is itself a failure, so a generator change cannot
silently turn a fault into a no-op.
"""

from __future__ import annotations

from amaranth.hdl import Fragment, Mux, Signal, signed
from amaranth.hdl import _ast

from accel.config import ArrayConfig

__all__ = ["rewrite", "operand", "off_rail", "no_forwarding", "acc_flag_not_ored", "top_fragment"]


def rewrite(fragment: Fragment, lhs: str, change) -> Fragment:
    """Replace the right-hand side of the top-level assignments whose target is ``lhs`` (the
    repr of the target, e.g. ``(slice (sig psum_reg) 8:9)``) with ``change(rhs)``."""
    count = 0
    for stmts in fragment.statements.values():
        for i, stmt in enumerate(stmts):
            if isinstance(stmt, _ast.Assign) and repr(stmt.lhs) == lhs:
                stmts[i] = _ast.Assign(stmt.lhs, change(stmt.rhs))
                count += 1
    assert count, f"fault target {lhs} not found: the generator changed, update the fault"
    return fragment


def operand(index: int):
    """``change`` keeping one operand of a binary operator (dropping the other)."""
    def change(rhs):
        assert isinstance(rhs, _ast.Operator) and len(rhs.operands) == 2, rhs
        return rhs.operands[index]
    return change


def off_rail(original):
    """``op_bits`` whose upper saturation rail is 2^(B-1) - 2 instead of 2^(B-1) - 1."""
    def op_bits(m, total, bits, mode):
        result, overflow = original(m, total, bits, mode)
        if mode != "saturate":
            return result, overflow
        hi = (1 << (bits - 1)) - 1
        bad = Signal(signed(bits), name="bad_rail")
        m.d.comb += bad.eq(Mux(overflow & (result == hi), hi - 1, result))
        return bad, overflow
    return op_bits


def no_forwarding(accmem: Fragment) -> Fragment:
    """The accumulator memory (a fragment of :class:`rtl_gen.accmem.AccMem`) with its
    forwarding path removed: ``fwd_use`` keeps only ``init``, so an update that follows an
    update of the same entry on the edge before reads the stale entry from memory."""
    return rewrite(accmem, "(sig fwd_use)", operand(0))


def acc_flag_not_ored(accmem: Fragment, config: ArrayConfig) -> Fragment:
    """The accumulator memory with lane 0's ``acc_ovf`` set from this update's overflow alone
    instead of OR-ed into the entry's flag, so an overflow of an earlier fold is forgotten."""
    q, c = config.out_bits, config.cols
    lo = c * q + c  # acc_ovf follows the C data lanes and the C pe_ovf bits
    return rewrite(accmem, f"(slice (slice (sig new) {lo}:{lo + c}) 0:1)", operand(1))


def top_fragment(config: ArrayConfig, accmem_fault=None) -> Fragment:
    """``Top(config)`` elaborated, with ``accmem_fault(fragment)`` applied to its accumulator
    memory (None: as generated). Elaborate it under a ``monkeypatch`` of a generator function
    (e.g. :func:`off_rail`) to build that fault into the whole top level."""
    from rtl_gen.accmem import AccMem
    from rtl_gen.formal.harness import find_origin
    from rtl_gen.top import Top

    top = Fragment.get(Top(config), None)
    if accmem_fault is not None:
        accmem_fault(find_origin(top, ("accmem",), AccMem)[1])
    return top
