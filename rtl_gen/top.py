"""The top level: flat ports of SPEC section 3 around tile control, mesh, accumulator and FIFO.

Data path of one ``x`` beat transferred on edge e (see :mod:`accel.timing`): the mesh consumes it
from edge e (with OverQ the encoder registers it on edge e and the mesh consumes the encoded lanes
from edge e + 1), its control (valid, address, init, emit, bank) travels beside the mesh in a
``mesh_delay - 1`` register pipeline to the accumulator read stage, the fold results reach the
update stage on edge e + mesh_delay, and an emitted result enters the output FIFO there.

Readiness (every ready is a function of registers and the same stream's payload only):

* ``w_ready`` / ``b_ready``: the shadow may be written (:class:`rtl_gen.tiles.TileControl`);
* ``x_ready``: an ``x_first`` beat needs a complete shadow, an ``x_emit`` beat a credit;
* all readies and ``y_valid`` are 0 while ``rst`` is 1 and on the first edge after it (the
  ``started`` register).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from accel.config import ArrayConfig
from accel.timing import timing
from rtl_gen.accmem import AccMem
from rtl_gen.interfaces import CtrlLayout, check_rtl_config, port_table
from rtl_gen.mesh import Mesh
from rtl_gen.outq import OutputQueue
from rtl_gen.overq_encoder import OverQEncoder
from rtl_gen.tiles import TileControl

__all__ = ["Top"]


class Top(wiring.Component):
    """The whole array for one configuration, with the flat ports of SPEC section 3.

    Parameters
    ----------
    config : ArrayConfig
        Any configuration; with OverQ, ``x_data`` carries raw lane codes and an
        :class:`rtl_gen.overq_encoder.OverQEncoder` sits in front of the mesh.

    Attributes
    ----------
    Every port of :func:`rtl_gen.interfaces.port_table` except ``clk`` and ``rst`` (the ``sync``
    domain's clock and reset), with the same name, direction and width.
    """

    def __init__(self, config: ArrayConfig):
        self.config = check_rtl_config(config)
        self.timing = timing(config)
        members = {}
        for port in port_table(config):
            if port.name not in ("clk", "rst"):
                members[port.name] = (In if port.direction == "in" else Out)(port.width)
        super().__init__(members)

    def elaborate(self, platform):
        cfg = self.config
        m = Module()
        m.submodules.tiles = tiles = TileControl(cfg)
        m.submodules.mesh = mesh = Mesh(cfg)
        m.submodules.accmem = acc = AccMem(cfg)
        m.submodules.outq = outq = OutputQueue(cfg)

        # --- readiness ------------------------------------------------------------------------
        started = Signal()  # 0 until the first edge with rst low has passed
        m.d.sync += started.eq(1)
        live = started & ~ResetSignal()
        m.d.comb += [
            self.w_ready.eq(live & tiles.w_open),
            self.b_ready.eq(live & tiles.b_open),
            self.x_ready.eq(live & (~self.x_first | tiles.complete) & (~self.x_emit | outq.credit)),
        ]
        w_fire = self.w_valid & self.w_ready
        b_fire = self.b_valid & self.b_ready
        x_fire = self.x_valid & self.x_ready

        # --- tiles: w rows and the bias go into the shadow bank ---------------------------------
        shadow = ~tiles.active_bank
        m.d.comb += [
            tiles.w_fire.eq(w_fire), tiles.w_last.eq(self.w_last), tiles.b_fire.eq(b_fire),
            tiles.first_fire.eq(x_fire & self.x_first),
            mesh.load_row.eq(self.w_data), mesh.load_sel.eq(tiles.w_row),
            mesh.load_bank.eq(shadow), mesh.load_en.eq(w_fire),
            acc.bias.eq(self.b_data), acc.bias_bank.eq(shadow), acc.bias_en.eq(b_fire),
        ]

        # --- x: the beat's bank travels with its wavefront, its control beside the mesh ---------
        bank = Mux(self.x_first, shadow, tiles.active_bank)
        if cfg.overq is None:
            m.d.comb += [mesh.act.eq(self.x_data), mesh.bank.eq(bank)]
        else:  # raw lane codes through the encoder stage (counted in timing.mesh_delay)
            m.submodules.encoder = encoder = OverQEncoder(cfg)
            m.d.comb += [encoder.raw.eq(self.x_data), encoder.bank_in.eq(bank),
                         mesh.act.eq(encoder.lanes), mesh.bank.eq(encoder.bank_out)]
        ctrl = Signal(CtrlLayout(cfg))
        m.d.comb += [ctrl.addr.eq(self.x_addr), ctrl.init.eq(self.x_init),
                     ctrl.emit.eq(self.x_emit), ctrl.bank.eq(bank)]
        valid, stage = x_fire, ctrl
        for i in range(self.timing.mesh_delay - 1):  # ends at the accumulator read stage
            next_valid = Signal(name=f"ctrl_valid_d{i + 1}")
            next_stage = Signal(CtrlLayout(cfg), name=f"ctrl_d{i + 1}", reset_less=True)
            m.d.sync += [next_valid.eq(valid), next_stage.eq(stage)]
            valid, stage = next_valid, next_stage
        m.d.comb += [acc.rd_valid.eq(valid), acc.rd_ctrl.eq(stage),
                     acc.psum.eq(mesh.psum), acc.ovf.eq(mesh.ovf)]

        # --- y: through the credit-controlled FIFO ----------------------------------------------
        wiring.connect(m, acc.result, outq.push)
        m.d.comb += [
            outq.take.eq(x_fire & self.x_emit),
            self.y_valid.eq(outq.y.valid & ~ResetSignal()),
            outq.y.ready.eq(self.y_ready & ~ResetSignal()),
            self.y_data.eq(outq.y.payload.data),
            self.y_addr.eq(outq.y.payload.addr),
            self.y_pe_ovf.eq(outq.y.payload.pe_ovf),
            self.y_acc_ovf.eq(outq.y.payload.acc_ovf),
        ]
        return m
