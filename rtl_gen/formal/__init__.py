"""Formal proofs that the generated RTL is the contract (``accel prove``).

One harness module per block, each building its proofs from the same generator class the array
is made of, with references written independently of rtl_gen (:mod:`.reference`,
:mod:`.encoding`); :mod:`.runner` is the only place that knows SymbiYosys and the solvers;
:mod:`.trace` reads a counterexample back in the project's terms.

=================  ============================  ===========================================
block              proofs                        mode
=================  ============================  ===========================================
``pe``             ``pe.product``, ``pe.step``   unbounded (combinational; k-induction)
``mesh``           ``mesh.fold``                 unbounded (k-induction)
``accmem``         ``accmem.update``             bounded, latency + fifo_depth + 2 edges
``overq-encoder``  ``overq-encoder.encode``      unbounded (k-induction); OverQ only
``top``            ``top.protocol``,             bounded, latency + fifo_depth + 2 edges
                   ``top.ready_path``
=================  ============================  ===========================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from accel.config import ArrayConfig, ConfigError
from rtl_gen.formal.harness import FormalError, Harness

__all__ = ["BLOCKS", "FormalError", "Harness", "plan", "harnesses"]

#: Blocks with proofs, in the order they are proven.
BLOCKS = ("pe", "mesh", "accmem", "overq-encoder", "top")


def plan(config: ArrayConfig, blocks: Iterable[str] | None = None, depth: int | None = None
         ) -> list[tuple[str, Callable[[], Harness]]]:
    """The proofs of ``blocks`` (default: every block ``config`` has), as (name, builder) pairs
    in proof order; the arguments are checked here, the harnesses built only when called.

    The lemmas that a requested proof assumes come along (``pe.product`` with ``pe`` and
    ``mesh``; with OverQ also ``overq-encoder.encode``, which proves the lane tags they assume).

    Parameters
    ----------
    config : ArrayConfig
    blocks : iterable of str, optional
        Names from :data:`BLOCKS`; ``overq-encoder`` needs an OverQ configuration.
    depth : int, optional
        Depth of the bounded proofs (accmem, top), at least ``latency + fifo_depth + 2``.
    """
    from rtl_gen.formal import accmem, mesh, overq_encoder, pe, top
    from rtl_gen.formal.harness import bounded_depth

    if blocks is None:
        blocks = [b for b in BLOCKS if b != "overq-encoder" or config.overq is not None]
    blocks = list(dict.fromkeys(blocks))
    requested = set(blocks)
    for block in blocks:
        if block not in BLOCKS:
            raise ValueError(f"unknown block {block!r}; valid blocks are {', '.join(BLOCKS)}")
    if "overq-encoder" in blocks and config.overq is None:
        raise ConfigError("block overq-encoder needs an OverQ configuration (--overq-mode); "
                          "this one has none")
    bounded_depth(config, depth)  # a too small depth is an error before any work
    proofs = {
        "pe": [("pe.product", lambda: pe.product_harness(config)),
               ("pe.step", lambda: pe.step_harness(config))],
        "mesh": [("mesh.fold", lambda: mesh.fold_harness(config))],
        "accmem": [("accmem.update", lambda: accmem.update_harness(config, depth=depth))],
        "overq-encoder": [("overq-encoder.encode", lambda: overq_encoder.encode_harness(config))],
        "top": [("top.protocol", lambda: top.protocol_harness(config, depth=depth)),
                ("top.ready_path", lambda: top.ready_path_harness(config, depth=depth))],
    }
    # the lemmas a proof assumes are proven in the same run (pe.product for the arithmetic,
    # the encoder's tags for OverQ lanes)
    if {"pe", "mesh"} & set(blocks):
        blocks.append("pe")
        if config.overq is not None:
            blocks.append("overq-encoder")
    chosen = [proof for block in BLOCKS if block in blocks for proof in proofs[block]]
    if "pe" not in requested and "pe" in blocks:
        chosen = [p for p in chosen if p[0] != "pe.step"]
    return chosen


def harnesses(config: ArrayConfig, blocks: Iterable[str] | None = None,
              depth: int | None = None) -> list[Harness]:
    """Every harness of :func:`plan`, built."""
    return [build() for _, build in plan(config, blocks, depth)]
