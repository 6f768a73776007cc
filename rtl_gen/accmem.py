"""The output accumulator memory: fold results summed per entry, the bias, sticky flags.

Two stages, one beat per clock at full throughput:

* **read stage** (edge e + mesh_delay - 1 for a beat transferred on edge e): the synchronous read
  port is given the beat's address. On the same edge the *forwarding register* is loaded with
  either the bias of the beat's tile (``init`` beats) or the entry being written by the beat ahead
  (when it has the same address), because the memory read on that edge still returns the old
  word. Selecting the bias here, one edge before the update, is free (the forwarding register
  and its multiplexer exist anyway) and is what keeps ``bfree_after_first <= wfree_after_first +
  R - 1``.
* **update stage** (edge e + mesh_delay): ``entry := op_Q(base + s)`` with base the forwarded word
  or the memory word; flags are the beat's own flags on ``init`` (the forwarded base has no
  flags) and OR-ed otherwise; the entry is written back and, on ``emit``, sent on ``result``.

Beats two or more apart need no forwarding: the read happens after the earlier write.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from accel.config import ArrayConfig
from rtl_gen.interfaces import CtrlLayout, EntryLayout, ResultLayout, check_rtl_config
from rtl_gen.pe import op_bits

__all__ = ["AccMem"]


class AccMem(wiring.Component):
    """Output accumulator: ``acc_depth`` entries of C x Q bits plus 2C flag bits.

    Parameters
    ----------
    config : ArrayConfig
        C, P, Q, the overflow mode and ``acc_depth`` are used.

    Attributes
    ----------
    rd_valid : 1 bit, in
        A beat is in the read stage.
    rd_ctrl : CtrlLayout, in
        Its address, ``init``, ``emit`` and tile bank.
    psum : ArrayLayout(signed P bits, C), in
        Fold results of the beat in the update stage (the beat of the previous edge's read stage).
    ovf : C bits, in
        Its PE overflow flags.
    bias : ArrayLayout(signed Q bits, C), in
        Written into bias bank ``bias_bank`` on the edge where ``bias_en`` is 1.
    bias_bank, bias_en : 1 bit, in
    result : stream of ResultLayout, out (always ready)
        One beat per ``emit`` beat, on its update edge.
    """

    def __init__(self, config: ArrayConfig):
        self.config = check_rtl_config(config)
        c = config.cols
        bias_shape = data.ArrayLayout(signed(config.out_bits), c)
        super().__init__({
            "rd_valid": In(1),
            "rd_ctrl": In(CtrlLayout(config)),
            "psum": In(data.ArrayLayout(signed(config.pe_acc_bits), c)),
            "ovf": In(c),
            "bias": In(bias_shape),
            "bias_bank": In(1),
            "bias_en": In(1),
            "result": Out(stream.Signature(ResultLayout(config), always_ready=True)),
        })

    def elaborate(self, platform):
        cfg = self.config
        cols, q = cfg.cols, cfg.out_bits
        entry_layout = EntryLayout(cfg)
        m = Module()

        # double-buffered bias: datapath registers, written by b beats into the shadow bank
        biases = [Signal(self.bias.shape(), name=f"bias{i}", reset_less=True) for i in (0, 1)]
        for i, bias in enumerate(biases):
            with m.If(self.bias_en & (self.bias_bank == i)):
                m.d.sync += bias.eq(self.bias)

        # acc_depth = 1 still gets a 1-bit address (a zero-width one is no valid Verilog range);
        # the protocol keeps x_addr at 0 then, so the second word is never used
        depth = max(2, cfg.acc_depth)
        m.submodules.memory = memory = Memory(shape=entry_layout, depth=depth, init=[])
        rd = memory.read_port()
        wr = memory.write_port()

        # --- update stage ---------------------------------------------------------------------
        u_valid = Signal()
        u_ctrl = Signal(CtrlLayout(cfg), reset_less=True)
        fwd = Signal(entry_layout, reset_less=True)
        fwd_use = Signal(reset_less=True)
        base = Signal(entry_layout)
        m.d.comb += base.eq(Mux(fwd_use, fwd.as_value(), rd.data.as_value()))

        new = Signal(entry_layout)
        for c in range(cols):
            value, overflow = op_bits(m, base.data[c] + self.psum[c], q, cfg.overflow)
            m.d.comb += [new.data[c].eq(value), new.acc_ovf[c].eq(base.acc_ovf[c] | overflow)]
        m.d.comb += [
            new.pe_ovf.eq(base.pe_ovf | self.ovf),
            wr.addr.eq(u_ctrl.addr),
            wr.data.eq(new),
            wr.en.eq(u_valid),
            self.result.valid.eq(u_valid & u_ctrl.emit),
            self.result.payload.data.eq(new.data),
            self.result.payload.addr.eq(u_ctrl.addr),
            self.result.payload.pe_ovf.eq(new.pe_ovf),
            self.result.payload.acc_ovf.eq(new.acc_ovf),
        ]

        # --- read stage -----------------------------------------------------------------------
        init_base = Signal(entry_layout)  # the bias of the beat's tile, flags clear
        m.d.comb += [
            rd.addr.eq(self.rd_ctrl.addr),
            init_base.data.eq(Mux(self.rd_ctrl.bank, biases[1], biases[0])),
        ]
        same_addr = u_valid & (u_ctrl.addr == self.rd_ctrl.addr)
        m.d.sync += [
            u_valid.eq(self.rd_valid),
            u_ctrl.eq(self.rd_ctrl),
            fwd_use.eq(self.rd_ctrl.init | same_addr),
            fwd.eq(Mux(self.rd_ctrl.init, init_base.as_value(), new.as_value())),
        ]
        return m
