"""Formal harnesses of the top level (:class:`rtl_gen.top.Top`): the stream protocol.

Both bounded, to ``latency + fifo_depth + 2`` edges (:func:`rtl_gen.formal.harness.bounded_depth`:
long enough for a result to come out, the FIFO to fill under back-pressure and drain), with
every input free on every edge (protocol-breaking stimulus included) and reset asserted on the
first edge and free after it:

``top.protocol``
    * ``y_stable``: once ``y_valid`` is high it stays high with the same payload (``y_data``,
      ``y_addr``, both flag vectors) until the transfer (unless a reset discards it);
    * ``reset``: while ``rst`` is 1 and on the first edge after it (edge 0), no ready is high
      and ``y_valid`` is 0, so nothing transfers;
    * ``fifo``: the credits never let the output FIFO be written while full;
    * ``credits``: results outstanding (``x_emit`` beats accepted, less ``y`` beats sent) stay
      within the FIFO's depth, and no ``y`` beat is sent that no emit beat asked for.
``top.ready_path``
    A miter: two copies of the array get the same inputs except ``y_ready``, which may differ
    from one edge on; up to and including that edge their ``w_ready``, ``b_ready`` and
    ``x_ready`` agree, so no ready depends combinationally on ``y_ready``.
"""

from __future__ import annotations

from typing import Any

from amaranth.asserts import Initial
from amaranth.hdl import Cat, ResetSignal, Signal

from accel.config import ArrayConfig
from accel.timing import timing
from rtl_gen.formal.harness import (Embedded, Harness, bounded_depth, depth_reason, elaborate,
                                    find_origin, free)

__all__ = ["protocol_harness", "ready_path_harness"]

_READIES = ("w_ready", "b_ready", "x_ready")


def _inputs(m, config: ArrayConfig) -> dict[str, Signal]:
    """A free signal per top-level input port (clk and rst aside)."""
    from rtl_gen.interfaces import port_table

    return {p.name: free(m, p.width, f"in_{p.name}") for p in port_table(config)
            if p.direction == "in" and p.name not in ("clk", "rst")}


def _reset(h: Harness) -> Signal:
    """The harness' reset (a free input of the proof), asserted on the first edge."""
    rst = Signal(name="rst_in")
    h.module.d.comb += rst.eq(ResetSignal("sync"))
    h.assume(~Initial() | rst, "reset is asserted on the first edge (a job starts from reset)")
    return rst


def protocol_harness(config: ArrayConfig, dut: Any = None, depth: int | None = None) -> Harness:
    """``top.protocol``: y stability, reset, FIFO and credit properties (module doc).

    Parameters
    ----------
    config : ArrayConfig
    dut : Top or Fragment, optional
        Test hook for fault injection (see :func:`rtl_gen.formal.pe.step_harness`).
    depth : int, optional
        Steps to check, at least ``latency + fifo_depth + 2`` (the default).
    """
    from amaranth.lib.fifo import SyncFIFOBuffered

    from rtl_gen.top import Top

    top, frag = elaborate(Top(config) if dut is None else dut)
    t = timing(config)
    h = Harness("top", "protocol", config, mode="bmc", depth=bounded_depth(config, depth),
                depth_reason=depth_reason(depth))
    m = h.module
    m.submodules.top = Embedded(frag)
    rst = _reset(h)
    ins = _inputs(m, config)
    m.d.comb += [getattr(top, name).eq(sig) for name, sig in ins.items()]
    fifo, _ = find_origin(frag, ("outq", "fifo"), SyncFIFOBuffered)

    past = Signal(reset_less=True, name="past")
    prev_rst = Signal(reset_less=True, name="prev_rst")
    m.d.sync += [past.eq(1), prev_rst.eq(rst)]

    # y_stable: a pending y beat (valid, not ready) is still there, unchanged, on the next edge
    payload = Cat(top.y_data, top.y_addr, top.y_pe_ovf, top.y_acc_ovf)
    pending = Signal(reset_less=True, name="y_pending")
    held = Signal.like(payload, reset_less=True, name="y_held")
    m.d.sync += [pending.eq(top.y_valid & ~ins["y_ready"]), held.eq(payload)]
    h.check("y_stable", top.y_valid & (payload == held),
            "a y beat stays valid with a stable payload until it transfers",
            when=past & pending & ~rst,
            shows=(h.probe(top.y_valid, "y_valid"), h.probe(top.y_data, "y_data"),
                   h.probe(held[:len(top.y_data)], "y_data one edge earlier")))

    # reset: nothing transfers while rst is 1 and on edge 0 after it
    quiet = ~top.w_ready & ~top.b_ready & ~top.x_ready & ~top.y_valid
    h.check("reset", quiet, "while rst is 1 and on the first edge after it, no ready and no "
            "y_valid is high", when=rst | (past & prev_rst))

    # fifo and credits
    h.check("fifo", ~(fifo.w_en & ~fifo.w_rdy), "the output FIFO is never written while full",
            shows=(h.probe(fifo.level, "FIFO level"),))
    outstanding = Signal(range(t.fifo_depth + 2), name="outstanding")
    emit = top.x_valid & top.x_ready & top.x_emit
    y_fire = top.y_valid & ins["y_ready"]
    with m.If(emit & ~y_fire & (outstanding <= t.fifo_depth)):
        m.d.sync += outstanding.eq(outstanding + 1)
    with m.Elif(y_fire & ~emit & (outstanding != 0)):
        m.d.sync += outstanding.eq(outstanding - 1)
    h.check("credits", (outstanding <= t.fifo_depth) & (~y_fire | (outstanding != 0)),
            f"results outstanding stay within the FIFO depth ({t.fifo_depth}) and every y beat "
            "answers an accepted emit beat", when=~rst,
            shows=(h.probe(outstanding, "results outstanding"),))

    for name in ("x_valid", "x_first", "x_emit", "w_valid", "w_last", "b_valid", "y_ready"):
        h.probe(ins[name], name)
    for name in ("x_ready", "w_ready", "b_ready"):
        h.probe(getattr(top, name), name)
    h.probe(rst, "rst")
    h.cover("y_backpressure", past & pending & ~rst & top.y_valid,
            "a y beat held under back-pressure")
    h.cover("fifo_full", fifo.level == t.fifo_depth, "the output FIFO full")
    h.cover("reset_in_flight", rst & (outstanding != 0), "a reset with results in flight")
    h.finish()
    return h


def ready_path_harness(config: ArrayConfig, dut: Any = None, depth: int | None = None) -> Harness:
    """``top.ready_path``: the two-copy miter on ``y_ready`` (module doc).

    Parameters
    ----------
    config : ArrayConfig
    dut : callable, optional
        Test hook for fault injection: called twice, it returns each copy to prove (a Top or a
        fragment elaborated from one); default ``Top(config)``.
    depth : int, optional
        Steps to check, at least ``latency + fifo_depth + 2`` (the default).
    """
    from rtl_gen.top import Top

    make = dut or (lambda: Top(config))
    (a, frag_a), (b, frag_b) = elaborate(make()), elaborate(make())
    h = Harness("top", "ready_path", config, mode="bmc", depth=bounded_depth(config, depth),
                depth_reason=depth_reason(depth))
    m = h.module
    m.submodules.a = Embedded(frag_a)
    m.submodules.b = Embedded(frag_b)
    _reset(h)
    ins = _inputs(m, config)
    for name, sig in ins.items():
        if name != "y_ready":
            m.d.comb += [getattr(a, name).eq(sig), getattr(b, name).eq(sig)]
    flip = free(m, 1, "flip")
    diverged = Signal(name="diverged", reset_less=True)
    m.d.sync += diverged.eq(diverged | flip)
    m.d.comb += [a.y_ready.eq(ins["y_ready"]), b.y_ready.eq(ins["y_ready"] ^ flip)]
    for name in _READIES:
        h.check("ready_path", getattr(a, name) == getattr(b, name),
                "w_ready, b_ready and x_ready do not depend combinationally on y_ready (two "
                "copies, same state, y_ready differing on this edge)", when=~diverged,
                shows=(h.probe(getattr(a, name), f"{name} (copy a)"),
                       h.probe(getattr(b, name), f"{name} (copy b)")))
    h.probe(ins["y_ready"], "y_ready (copy a)")
    h.probe(flip, "y_ready differs")
    h.cover("flip_with_y", ~diverged & flip & a.y_valid & a.x_ready,
            "y_ready differing while a y beat is offered and x is ready")
    h.finish()
    return h
