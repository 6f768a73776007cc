"""Formal harness of the output accumulator memory (:class:`rtl_gen.accmem.AccMem`).

``accmem.update`` (bounded): for every sequence of beats (any addresses, same-address beats on
consecutive edges included, gaps anywhere), fold results, PE flags and bias loads, the result
of each beat is, per lane c,

* on an ``x_init`` beat: ``op_Q(bias + s)``, its PE flag the beat's own and its accumulator flag
  the event of this step (flags set on init);
* otherwise: ``op_Q(acc + s)`` with ``acc`` the entry as the previous beat to that address left
  it, the flags OR-ed with that entry's;

``acc`` and the bias are the reference's own state (a symbolic address A, any of the memory's,
is tracked, which covers every address), the bias being the one in the beat's bank when it is
in the read stage (the edge before its update). An emit beat's result appears on ``result`` on
its update edge with its address, and only emit beats produce one. It assumes the protocol rule
of SPEC section 3: a beat that accumulates has an initialised entry (and with acc_depth = 1 the
address is 0).

Bounded, not unbounded: the memory's contents are not visible to the harness, so k-induction
cannot tie them to the reference; the depth is ``latency + fifo_depth + 2`` edges of
:func:`accel.timing.timing` (any address sequence that long).
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Mux, Signal, signed
from amaranth.lib import data

from accel.config import ArrayConfig
from rtl_gen.formal.harness import (Embedded, Harness, bounded_depth, depth_reason, elaborate,
                                    find_signal, free, free_const, no_reset)
from rtl_gen.formal.reference import op_ref

__all__ = ["update_harness"]


def update_harness(config: ArrayConfig, dut: Any = None, depth: int | None = None) -> Harness:
    """``accmem.update``: accumulator updates, forwarding, bias and flags (module doc).

    Parameters
    ----------
    config : ArrayConfig
    dut : AccMem or Fragment, optional
        Test hook for fault injection (see :func:`rtl_gen.formal.pe.step_harness`).
    depth : int, optional
        Steps to check, at least :func:`rtl_gen.formal.harness.bounded_depth` (the default).
    """
    from rtl_gen.accmem import AccMem
    from rtl_gen.interfaces import CtrlLayout, EntryLayout

    acc, frag = elaborate(AccMem(config) if dut is None else dut)
    cols, p, q = config.cols, config.pe_acc_bits, config.out_bits
    h = Harness("accmem", "update", config, mode="bmc", depth=bounded_depth(config, depth),
                depth_reason=depth_reason(depth))
    m = h.module
    no_reset(m)
    m.submodules.accmem = Embedded(frag)

    # free inputs on every edge
    rd_valid = free(m, 1, "rd_valid")
    rd = free(m, CtrlLayout(config), "rd_ctrl")
    psum = [free(m, signed(p), f"psum{c}") for c in range(cols)]
    ovf = free(m, cols, "pe_ovf")
    bias_in = [free(m, signed(q), f"bias_in{c}") for c in range(cols)]
    bias_en, bias_bank = free(m, 1, "bias_en"), free(m, 1, "bias_bank")
    m.d.comb += [acc.rd_valid.eq(rd_valid), acc.rd_ctrl.eq(rd), acc.ovf.eq(ovf),
                 acc.bias_en.eq(bias_en), acc.bias_bank.eq(bias_bank)]
    m.d.comb += [acc.psum[c].eq(psum[c]) for c in range(cols)]
    m.d.comb += [acc.bias[c].eq(bias_in[c]) for c in range(cols)]
    tracked = free_const(m, config.addr_bits, "tracked_addr")
    if config.acc_depth == 1:
        h.assume(~rd_valid | (rd.addr == 0), "with acc_depth = 1 the address is 0")
        h.assume(tracked == 0, "with acc_depth = 1 the address is 0")

    # reference bias banks; a beat takes its bank's bias in its read stage
    ref_bias = [[Signal(signed(q), name=f"ref_bias{b}_{c}", reset_less=True) for c in range(cols)]
                for b in (0, 1)]
    for b in (0, 1):
        with m.If(bias_en & (bias_bank == b)):
            m.d.sync += [ref_bias[b][c].eq(bias_in[c]) for c in range(cols)]

    # the beat in the update stage (read stage on the previous edge)
    past = Signal(reset_less=True, name="past")
    u_valid = Signal(reset_less=True, name="u_valid_ref")
    u = Signal(CtrlLayout(config), reset_less=True, name="u_ctrl_ref")
    u_bias = [Signal(signed(q), reset_less=True, name=f"u_bias{c}") for c in range(cols)]
    m.d.sync += [past.eq(1), u_valid.eq(rd_valid), u.eq(rd)]
    m.d.sync += [u_bias[c].eq(Mux(rd.bank, ref_bias[1][c], ref_bias[0][c])) for c in range(cols)]

    # the tracked entry, as the design wrote it on its last update (every update is checked
    # below, so by induction over the updates the entry is the reference fold; capturing the
    # written word keeps each check one step deep instead of the whole history of sums)
    written = data.View(EntryLayout(config), find_signal(frag, "new", "the entry written back"))
    entry = [Signal(signed(q), reset_less=True, name=f"acc{c}") for c in range(cols)]
    entry_pe = Signal(cols, reset_less=True, name="acc_pe_ovf")
    entry_acc = Signal(cols, reset_less=True, name="acc_acc_ovf")
    defined = Signal(reset_less=True, name="acc_defined")
    hit = u_valid & (u.addr == tracked)
    h.assume(~hit | u.init | defined, "a beat that accumulates has an initialised entry "
             "(SPEC section 3: undefined until its next x_init)")

    new, events = [], []
    for c in range(cols):
        base = Mux(u.init, u_bias[c], entry[c])
        value, event = op_ref(m, base + psum[c], q, config.overflow, f"acc_new{c}")
        new.append(value)
        events.append(event)
    new_pe = Signal(cols, name="new_pe_ovf")
    new_acc = Signal(cols, name="new_acc_ovf")
    m.d.comb += [new_pe.eq(Mux(u.init, 0, entry_pe) | ovf),
                 new_acc.eq(Mux(u.init, 0, entry_acc) | Cat(*events))]
    with m.If(hit):
        m.d.sync += [entry[c].eq(written.data[c]) for c in range(cols)]
        m.d.sync += [entry_pe.eq(written.pe_ovf), entry_acc.eq(written.acc_ovf), defined.eq(1)]

    for c in range(cols):
        h.check("entry", written.data[c] == new[c], "every update writes back, per lane, init: "
                "op_Q(bias + s), else op_Q(acc + s)", when=past & hit,
                shows=(h.probe(written.data[c], f"written lane {c}"),
                       h.probe(new[c], f"expected written lane {c}")))
    h.check("entry_flags", (written.pe_ovf == new_pe) & (written.acc_ovf == new_acc),
            "every update writes back the flags: the beat's own on init, OR-ed otherwise",
            when=past & hit)

    res = acc.result
    emits = u_valid & u.emit
    h.check("emit", res.valid == emits, "a result appears on the update edge of exactly the emit "
            "beats", when=past)
    h.check("addr", res.payload.addr == u.addr, "a result carries its beat's address",
            when=past & emits)
    for c in range(cols):
        shows = (h.probe(res.payload.data[c], f"y lane {c}"),
                 h.probe(new[c], f"expected y lane {c}"))
        h.check("value", res.payload.data[c] == new[c],
                "init: op_Q(bias + s); else op_Q(acc + s), per lane", when=past & emits & hit,
                shows=shows)
    h.check("flags", (res.payload.pe_ovf == new_pe) & (res.payload.acc_ovf == new_acc),
            "flags: the beat's own on init, OR-ed with the entry's otherwise",
            when=past & emits & hit,
            shows=(h.probe(res.payload.acc_ovf, "y acc_ovf"), h.probe(new_acc, "expected acc_ovf"),
                   h.probe(res.payload.pe_ovf, "y pe_ovf"), h.probe(new_pe, "expected pe_ovf")))

    # the cases that matter must happen: forwarding, overflow after init, the bias
    prev_hit = Signal(reset_less=True, name="prev_hit")
    m.d.sync += prev_hit.eq(past & hit)
    h.cover("forwarding", emits & hit & prev_hit & ~u.init & (new[0] != 0),
            "a beat accumulating into the entry the previous beat just wrote")
    h.cover("acc_event", emits & hit & ~u.init & events[0], "an accumulator overflow after init")
    h.cover("bias", emits & hit & u.init & (u_bias[0] != 0) & u.bank,
            "an init beat with a non-zero bias from bank 1")

    for sig, label in [(rd_valid, "read-stage beat"), (rd.addr, "its address"),
                       (rd.init, "its x_init"), (rd.emit, "its x_emit"), (rd.bank, "its bank"),
                       (tracked, "tracked address")]:
        h.probe(sig, label)
    for c in range(cols):
        h.probe(psum[c], f"s lane {c} (update stage)")
        h.probe(entry[c], f"reference acc lane {c}")
        h.probe(u_bias[c], f"bias lane {c} of the update beat")
    h.probe(ovf, "pe_ovf in (update stage)")
    h.finish()
    return h

