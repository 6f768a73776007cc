"""Reference arithmetic of SPEC sections 2 and 4, written as circuits independent of rtl_gen.

What the proofs compare the generated blocks against. Nothing here reuses a generator expression:
the product is a shift-add over the weight's bits (two's complement: the top bit weighs
-2^(M-1)), ``op_B`` compares the exact sum against the two rails and then wraps by taking the low
B bits or clamps to the rail crossed, and the OverQ lane term follows the table of SPEC section 4
(own weight × value · 2^F, upstream weight × value · 2^F, upstream weight × high part ·
2^(N+F), upstream weight × fraction) with the shifts written from the SPEC text.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, Value, signed

from accel.config import ArrayConfig
from accel.overq import LaneTag

__all__ = ["shift_add_product", "op_ref", "lane_shifts", "produced_tags"]


def shift_add_product(m: Module, a: Value, w: Value, name: str) -> Signal:
    """The exact product ``a · w`` as a sum of shifted copies of ``a``, one per bit of ``w``.

    Parameters
    ----------
    a : Value
        Any width and signedness (an activation, or an OverQ lane value: unsigned N bits).
    w : Value
        A signed M-bit weight: bit i adds ``a · 2^i`` for i < M - 1, the top bit subtracts
        ``a · 2^(M-1)``.

    Returns
    -------
    Signal
        Signed, ``len(a) + len(w)`` bits, which holds every product of the two ranges (so the
        width itself states that a product is never truncated).
    """
    a, w = Value.cast(a), Value.cast(w)
    width = len(a) + len(w)
    total: Value = Const(0, signed(width + 1))
    for i in range(len(w)):
        term = Mux(w[i], a.shift_left(i), 0)
        total = (total - term) if i == len(w) - 1 else (total + term)
    product = Signal(signed(width), name=name)
    m.d.comb += product.eq(total)
    return product


def op_ref(m: Module, total: Value, bits: int, mode: str, name: str) -> tuple[Signal, Signal]:
    """``op_B`` of SPEC section 2 on the exact value ``total``: (result, overflow event).

    The event is ``total < -2^(B-1)`` or ``total > 2^(B-1) - 1``, compared on the full width of
    ``total``; wrap keeps the low B bits (reduction modulo 2^B into the signed range), saturate
    returns the rail that was crossed.
    """
    total = Value.cast(total)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    exact = Signal(signed(max(len(total), bits) + 1), name=f"{name}_exact")
    event = Signal(name=f"{name}_event")
    result = Signal(signed(bits), name=name)
    m.d.comb += [exact.eq(total), event.eq((exact < lo) | (exact > hi))]
    if mode == "saturate":
        m.d.comb += result.eq(Mux(exact > hi, hi, Mux(exact < lo, lo, exact)))
    else:
        m.d.comb += result.eq(exact[:bits])
    return result, event


def lane_shifts(config: ArrayConfig) -> dict[LaneTag, int]:
    """Left shift of an OverQ lane term per tag, from SPEC section 4 (F fraction bits, 0 without
    precision): own and upstream value · 2^F, the high part · 2^(N+F), the fraction · 1."""
    f = config.act_bits if config.overq.mode in ("precision", "both") else 0
    n = config.act_bits
    return {LaneTag.OWN: f, LaneTag.UP: f, LaneTag.UP_HIGH: n + f, LaneTag.FRAC: 0}


def produced_tags(config: ArrayConfig) -> tuple[LaneTag, ...]:
    """The tags an OverQ mode can put on a lane (SPEC section 4): the own value always; with
    range overwrite the high part of an outlier, and a moved lane when cascading (c >= 1); with
    precision overwrite a fraction."""
    oq = config.overq
    tags = [LaneTag.OWN]
    if oq.mode in ("range", "both"):
        tags += [LaneTag.UP] if oq.cascade >= 1 else []
        tags.append(LaneTag.UP_HIGH)
    if oq.mode in ("precision", "both"):
        tags.append(LaneTag.FRAC)
    return tuple(tags)

