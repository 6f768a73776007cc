"""The output FIFO and its credit counter: the only path from ``y`` back-pressure to ``x_ready``.

An ``x_emit`` beat takes a credit when it transfers; a ``y`` transfer gives one back. The FIFO
holds ``timing(config).fifo_depth`` = latency + 1 entries, so with ``y_ready`` = 1 at most
``latency`` results are ever outstanding and credits never throttle ``x``. The credit count is a
register: there is no combinational path from ``y.ready`` to ``credit``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from accel.config import ArrayConfig
from accel.timing import timing
from rtl_gen.interfaces import ResultLayout, check_rtl_config

__all__ = ["OutputQueue"]


class OutputQueue(wiring.Component):
    """Credit-controlled output FIFO of ``y`` beats.

    Parameters
    ----------
    config : ArrayConfig

    Attributes
    ----------
    push : stream of ResultLayout, in (always ready)
        Results from the accumulator; never more than the credits allow.
    y : stream of ResultLayout, out
        The ``y`` stream (block-RAM friendly buffered FIFO, registered output).
    take : 1 bit, in
        An ``x_emit`` beat transferred on this edge: one credit is used.
    credit : 1 bit, out
        At least one credit is left (registered).
    """

    def __init__(self, config: ArrayConfig):
        self.config = check_rtl_config(config)
        self.depth = timing(config).fifo_depth
        layout = ResultLayout(config)
        super().__init__({
            "push": In(stream.Signature(layout, always_ready=True)),
            "y": Out(stream.Signature(layout)),
            "take": In(1),
            "credit": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=self.push.payload.shape().size,
                                                    depth=self.depth)
        m.d.comb += [
            fifo.w_data.eq(self.push.payload),
            fifo.w_en.eq(self.push.valid),
            self.y.payload.eq(fifo.r_data),
            self.y.valid.eq(fifo.r_rdy),
            fifo.r_en.eq(self.y.ready),
        ]

        credits = Signal(range(self.depth + 1), init=self.depth)
        give_back = self.y.valid & self.y.ready
        with m.If(give_back & ~self.take):
            m.d.sync += credits.eq(credits + 1)
        with m.Elif(self.take & ~give_back):
            m.d.sync += credits.eq(credits - 1)
        m.d.comb += self.credit.eq(credits != 0)
        return m
