"""Tile-switch control: which weight/bias bank is active, when the shadow may be written.

Rules of SPEC section 3: ``w`` is closed from the ``w_last`` transfer until ``wfree_after_first``
edges after the ``x_first`` transfer that activates the tile, ``b`` from its transfer until
``bfree_after_first`` edges after it; an ``x_first`` beat waits for a complete shadow (both its
``w_last`` and its ``b`` beat transferred). The wait lengths come from :func:`accel.timing.timing`.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from accel.config import ArrayConfig
from accel.timing import timing
from rtl_gen.interfaces import check_rtl_config

__all__ = ["TileControl"]


class TileControl(wiring.Component):
    """Bank select, shadow row counter and the ``w``/``b`` open flags (all registered).

    Parameters
    ----------
    config : ArrayConfig

    Attributes
    ----------
    w_fire, w_last : 1 bit, in
        A ``w`` beat transfers on this edge, and it is the tile's last row.
    b_fire : 1 bit, in
        A ``b`` beat transfers on this edge.
    first_fire : 1 bit, in
        An ``x_first`` beat transfers on this edge (it activates the shadow).
    w_open, b_open : 1 bit, out
        The shadow weights / bias may be written now (before ``rst`` and start-up gating).
    complete : 1 bit, out
        The shadow tile and bias are complete: an ``x_first`` beat may transfer.
    active_bank : 1 bit, out
        Bank of the active tile; the shadow is the other one.
    w_row : range(max(2, R)), out
        Shadow row written by the next ``w`` beat.
    """

    def __init__(self, config: ArrayConfig):
        self.config = check_rtl_config(config)
        self.timing = timing(config)
        super().__init__({
            "w_fire": In(1), "w_last": In(1), "b_fire": In(1), "first_fire": In(1),
            "w_open": Out(1), "b_open": Out(1), "complete": Out(1),
            "active_bank": Out(1), "w_row": Out(range(max(2, config.rows))),
        })

    def elaborate(self, platform):
        rows, t = self.config.rows, self.timing
        m = Module()
        active = Signal()
        w_full, b_full = Signal(), Signal()  # the shadow holds a whole tile / its bias
        # edges still to wait after an x_first before the old bank may be overwritten
        # (at least 1 bit wide: a zero-width register would be an empty Verilog range)
        w_wait = Signal(range(max(2, t.wfree_after_first)))
        b_wait = Signal(range(max(2, t.bfree_after_first)))
        w_row = Signal(range(max(2, rows)))  # >= 1 bit (R = 1 would give an empty range)

        m.d.comb += [
            self.w_open.eq(~w_full & (w_wait == 0)),
            self.b_open.eq(~b_full & (b_wait == 0)),
            self.complete.eq(w_full & b_full),
            self.active_bank.eq(active),
            self.w_row.eq(w_row),
        ]

        with m.If(self.w_fire):
            with m.If(self.w_last):
                m.d.sync += [w_row.eq(0), w_full.eq(1)]
            with m.Else():
                m.d.sync += w_row.eq(w_row + 1)
        with m.If(self.b_fire):
            m.d.sync += b_full.eq(1)

        # activation: flip banks, empty the shadow, start the waits (w_open rises exactly
        # wfree_after_first edges later: the wait register counts wfree - 1 .. 0)
        with m.If(self.first_fire):
            m.d.sync += [
                active.eq(~active), w_full.eq(0), b_full.eq(0),
                w_wait.eq(t.wfree_after_first - 1), b_wait.eq(t.bfree_after_first - 1),
            ]
        with m.Else():
            with m.If(w_wait != 0):
                m.d.sync += w_wait.eq(w_wait - 1)
            with m.If(b_wait != 0):
                m.d.sync += b_wait.eq(b_wait - 1)
        return m
