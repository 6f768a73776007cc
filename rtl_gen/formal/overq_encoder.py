"""Formal harness of the OverQ encoder (:class:`rtl_gen.overq_encoder.OverQEncoder`).

``overq-encoder.encode`` (unbounded, k-induction): for every fold of R raw lane codes (every
code of W bits per lane) and bank bit, one edge later every encoded lane's value and tag equal
those of the SPEC section 4 reference circuit (:func:`rtl_gen.formal.encoding.reference_encoder`,
differential-tested against :func:`accel.overq.encode`), and the bank bit comes along.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Signal

from accel.config import ArrayConfig, ConfigError
from rtl_gen.formal.encoding import reference_encoder
from rtl_gen.formal.harness import Embedded, Harness, elaborate, free, no_reset
from rtl_gen.formal.reference import produced_tags

__all__ = ["encode_harness"]


def encode_harness(config: ArrayConfig, dut: Any = None) -> Harness:
    """``overq-encoder.encode``: the encoder against the reference circuit (module doc).

    Parameters
    ----------
    config : ArrayConfig
        With OverQ.
    dut : OverQEncoder or Fragment, optional
        Test hook for fault injection (see :func:`rtl_gen.formal.pe.step_harness`).
    """
    from rtl_gen.overq_encoder import OverQEncoder

    if config.overq is None:
        raise ConfigError("the overq-encoder proof needs an OverQ configuration (--overq-mode); "
                          "this one has none")
    enc, frag = elaborate(OverQEncoder(config) if dut is None else dut)
    rows, w = config.rows, config.lane_bits
    h = Harness("overq-encoder", "encode", config, mode="prove", depth=2,
                depth_reason="k-induction: register stage, then the check",
                cover_depth=3)
    m = h.module
    no_reset(m)
    m.submodules.encoder = Embedded(frag)

    raw = [free(m, w, f"raw{k}") for k in range(rows)]
    bank = free(m, 1, "bank")
    m.d.comb += [enc.raw[k].eq(raw[k]) for k in range(rows)] + [enc.bank_in.eq(bank)]
    past = Signal(reset_less=True, name="past")
    raw_then = [Signal(w, reset_less=True, name=f"raw{k}_then") for k in range(rows)]
    bank_then = Signal(reset_less=True, name="bank_then")
    m.d.sync += [past.eq(1), bank_then.eq(bank)] + [r.eq(v) for r, v in zip(raw_then, raw)]
    values, tags = reference_encoder(m, raw_then, config)

    for k in range(rows):
        h.probe(raw_then[k], f"raw lane {k}")
    for k in range(rows):
        lane = enc.lanes[k]
        shows = (h.probe(lane.value, f"value {k}"), h.probe(values[k], f"expected value {k}"),
                 h.probe(lane.tag, f"tag {k}"), h.probe(tags[k], f"expected tag {k}"))
        h.check("lanes", (lane.value == values[k]) & (lane.tag == tags[k]),
                "every encoded lane (value, tag) is the SPEC section 4 encoding of the fold "
                "registered on the previous edge", when=past, shows=shows)
    h.check("bank", enc.bank_out == bank_then, "the bank bit travels with the fold", when=past)

    # every tag the mode produces, and the outlier fates, must occur
    n = config.act_bits
    oq = config.overq
    for t in produced_tags(config):
        hit = tags[0] == t
        for tag_k in tags[1:]:
            hit = hit | (tag_k == t)
        h.cover(f"tag_{t.name.lower()}", past & hit, f"a lane tagged {t.name}")
    if oq.has_range:
        reach = oq.cascade + 1
        last = min(reach, rows - 1)
        # an outlier in lane 0 whose first zero is the last one in reach
        chain = (raw_then[0] >> config.frac_bits) >= (1 << n)
        for j in range(1, last):
            chain = chain & (raw_then[j] != 0)
        h.cover("longest_chain", past & chain & (raw_then[last] == 0),
                f"a chain of the longest length {last}")
        if rows > reach + 1:
            unreached = (raw_then[0] >> config.frac_bits) >= (1 << n)
            for j in range(1, reach + 1):
                unreached = unreached & (raw_then[j] != 0)
            h.cover("unreached", past & unreached, "an outlier with no zero within reach")
    h.finish()
    return h

