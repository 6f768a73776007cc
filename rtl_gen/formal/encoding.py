"""The OverQ encoding of SPEC section 4 as a reference circuit, independent of rtl_gen.

:func:`reference_encoder` unrolls the SPEC text's algorithm, statement by statement, into
multiplexers: one pass over the outliers in increasing lane index, each looking for the first
zero lane below it not yet used, handled when that zero is within c + 1 lanes (low part kept,
high part into the lane below with the upstream weight, the lanes in between moved down one,
outliers among them displaced), clamped otherwise; then precision overwrite of the zeros still
unused. Every Python ``if`` of the text becomes a condition signal and every assignment a
multiplexer over the lane's previous value, in program order, so the circuit computes exactly
what the sequential text computes. It is differential-tested against :func:`accel.overq.encode`
on random folds (tests/test_formal.py) before it serves as the reference of
``overq-encoder.encode``.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, Value

from accel.config import ArrayConfig
from accel.overq import LaneTag

__all__ = ["reference_encoder"]


def _wire(m: Module, value: Value, name: str, width: int = 1) -> Signal:
    sig = Signal(width, name=name)
    m.d.comb += sig.eq(value)
    return sig


def reference_encoder(m: Module, raw: list[Value], config: ArrayConfig,
                      prefix: str = "ref") -> tuple[list[Signal], list[Signal]]:
    """Encoded lanes of one fold of raw codes, per SPEC section 4.

    Parameters
    ----------
    m : Module
        Where the (combinational) circuit is built.
    raw : list of Value
        The R raw lane codes, W = ``config.lane_bits`` bits each: ``integer << F | fraction``.
    config : ArrayConfig
        With OverQ: N, F = ``config.frac_bits``, mode and cascade c.

    Returns
    -------
    values, tags : list of Signal
        Per lane, the N-bit value and the 2-bit :class:`accel.overq.LaneTag`.
    """
    oq = config.overq
    r, n = config.rows, config.act_bits
    f = config.frac_bits
    clamp = (1 << n) - 1
    ints = [Value.cast(v)[f:] for v in raw]
    fracs = [Value.cast(v)[:f] if f else Const(0, n) for v in raw]
    is_zero = [Value.cast(v) == 0 for v in raw]
    is_outlier = [i >= (1 << n) for i in ints]

    def clamped(i: int) -> Value:
        return Mux(is_outlier[i], clamp, ints[i][:n])

    values: list[Value] = [clamped(k) for k in range(r)]
    tags: list[Value] = [Const(LaneTag.OWN, 2) for _ in range(r)]
    used = [Const(0, 1) for _ in range(r)]
    displaced = [Const(0, 1) for _ in range(r)]
    touched = [Const(0, 1) for _ in range(r)]

    if oq.mode in ("range", "both"):
        for k in range(r):
            # an outlier not displaced by an earlier chain looks for the first free zero below
            active = is_outlier[k] & ~displaced[k]
            earlier_free = Const(0, 1)
            for j in range(1, r - k):
                free = is_zero[k + j] & ~used[k + j]
                first = free & ~earlier_free          # k + j is the first free zero below k
                earlier_free = earlier_free | free
                if j > oq.cascade + 1:
                    continue                          # beyond reach: the outlier stays clamped
                take = active & first
                used[k + j] = used[k + j] | take
                values[k] = Mux(take, ints[k][:n], values[k])
                tags[k] = Mux(take, LaneTag.OWN, tags[k])
                values[k + 1] = Mux(take, ints[k][n:], values[k + 1])
                tags[k + 1] = Mux(take, LaneTag.UP_HIGH, tags[k + 1])
                for i in range(k + 1, k + j):         # the lanes in between move down one
                    values[i + 1] = Mux(take, clamped(i), values[i + 1])
                    tags[i + 1] = Mux(take, LaneTag.UP, tags[i + 1])
                    displaced[i] = displaced[i] | (take & is_outlier[i])
                for i in range(k, k + j + 1):
                    touched[i] = touched[i] | take
            # name the state after each outlier's turn (shared terms, not re-expanded trees)
            used = [_wire(m, v, f"{prefix}_used{i}_k{k}") for i, v in enumerate(used)]
            displaced = [_wire(m, v, f"{prefix}_displaced{i}_k{k}")
                         for i, v in enumerate(displaced)]
            touched = [_wire(m, v, f"{prefix}_touched{i}_k{k}") for i, v in enumerate(touched)]
            values = [_wire(m, v, f"{prefix}_v{i}_k{k}", n) for i, v in enumerate(values)]
            tags = [_wire(m, v, f"{prefix}_t{i}_k{k}", 2) for i, v in enumerate(tags)]

    if oq.mode in ("precision", "both"):
        for k in range(r - 1):
            slot = (is_zero[k + 1] & ~used[k + 1] & ~touched[k] & ~is_zero[k]
                    & ~is_outlier[k])
            values[k + 1] = Mux(slot, fracs[k], values[k + 1])
            tags[k + 1] = Mux(slot, LaneTag.FRAC, tags[k + 1])

    out_v = [Signal(n, name=f"{prefix}_value{k}") for k in range(r)]
    out_t = [Signal(2, name=f"{prefix}_tag{k}") for k in range(r)]
    m.d.comb += [s.eq(v) for s, v in zip(out_v, values)]
    m.d.comb += [s.eq(t) for s, t in zip(out_t, tags)]
    return out_v, out_t
