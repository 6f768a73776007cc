"""The timing numbers of the RTL block (SPEC section 3), as one pure function of the configuration.

All numbers count clock edges. They are exact, not bounds: the transaction-level model computes
cycles from them in closed form and the RTL generator sizes its pipelines from them, so the two
can never drift apart. The derivation follows the generated microarchitecture (``rtl_gen``):

* ``x`` is registered on the edge it transfers (edge e); PE (r, c) latches its partial sum on edge
  e + 1 + r + c (activations move right, partial sums move down); the de-skew registers align the
  C columns so that the fold result of the beat is consumed by the accumulator update on edge
  ``mesh_delay`` = e + R + C.
* The accumulator memory is read one stage before the update (edge e + R + C - 1). The bias of an
  ``x_init`` beat is selected on that same edge into the forwarding register, so it is needed one
  edge earlier than it would be at the update stage: this is what keeps
  ``bfree_after_first <= wfree_after_first + R - 1`` at no area cost.
* The update writes the result into a ``SyncFIFOBuffered`` (block-RAM friendly, registered output)
  on edge e + R + C; its entry appears on ``y`` two edges later.
* A ``w`` beat writes its weight row straight into the shadow bank on its transfer edge; row i of
  the old tile is last read by PE (i, C - 1) on edge e_first + i + C - 1, hence the first row of the
  next tile may be written C - 1 edges after the activating ``x_first`` (at least 1, because the
  ready flags are registered state).
* With OverQ (SPEC section 4) the encoder registers the raw lanes and the bank bit on the transfer
  edge and encodes them combinationally into the input skew: :func:`encoder_stages` = 1 more edge
  before every PE, so ``mesh_delay`` (and all that derives from it) grows by one. A PE also reads
  the weight of the PE directly above it, so row i of the old tile is last read by
  PE (i + 1, C - 1), one edge later than by its own row: ``wfree_after_first`` = C + 1 (C - 1,
  plus the encoder stage, plus the upstream read).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from accel.config import ArrayConfig

__all__ = ["Timing", "timing", "encoder_stages", "ENCODER_STAGES", "CONTRACT_FIELDS"]

#: The four timing numbers of the contract (SPEC section 3), in the order it names them; the
#: first fields of :class:`Timing` (``tests/test_rtl_export.py`` checks it).
CONTRACT_FIELDS = ("latency", "first_after_wlast", "wfree_after_first", "bfree_after_first")


@dataclass(frozen=True)
class Timing:
    """Timing numbers of one configuration, in clock edges (SPEC section 3).

    Attributes
    ----------
    latency : int
        From the transfer of an ``x_emit`` beat to the transfer of its ``y`` beat (``y_ready`` = 1).
    first_after_wlast : int
        From a ``w_last`` transfer (or the tile's ``b`` transfer, whichever is later) to the earliest
        edge an ``x_first`` beat using that tile can transfer.
    wfree_after_first : int
        From an ``x_first`` transfer to the earliest edge the next tile's first ``w`` beat can
        transfer.
    bfree_after_first : int
        From an ``x_first`` transfer to the earliest edge the next tile's ``b`` beat can transfer;
        always ``<= wfree_after_first + R - 1``.
    mesh_delay : int
        From the transfer of an ``x`` beat to the edge on which the accumulator update consumes its
        fold result (input register + R rows + C columns, de-skewed).
    fifo_depth : int
        Entries of the output FIFO, ``latency + 1``: credits never throttle ``x`` while ``y_ready``
        is 1.
    """

    latency: int
    first_after_wlast: int
    wfree_after_first: int
    bfree_after_first: int
    mesh_delay: int
    fifo_depth: int

    def to_dict(self) -> dict[str, int]:
        """The numbers as a plain dict (for manifests and JSON output)."""
        return asdict(self)


#: Edges from the accumulator update (FIFO write) to the ``y`` transfer: SyncFIFOBuffered's
#: inner memory read, then its output register.
FIFO_DELAY = 2
#: Edges from a register set by a transfer to the earliest transfer it enables.
STATE_DELAY = 1
#: Register stages of the OverQ encoder at the array input (``rtl_gen.overq_encoder``): the raw
#: lanes are registered on the ``x`` transfer edge and encoded combinationally into the skew.
ENCODER_STAGES = 1


def encoder_stages(config: ArrayConfig) -> int:
    """Edges the OverQ encoder adds in front of the mesh: :data:`ENCODER_STAGES` with OverQ,
    else 0."""
    return 0 if config.overq is None else ENCODER_STAGES


def timing(config: ArrayConfig) -> Timing:
    """Timing numbers of the array generated for ``config``, in clock edges.

    Parameters
    ----------
    config : ArrayConfig
        ``rows`` (R), ``cols`` (C) and whether OverQ is enabled (S = :func:`encoder_stages`,
        1 with OverQ, else 0) matter.

    Returns
    -------
    Timing
        ``latency = R + C + S + 2``, ``first_after_wlast = 1``, ``wfree_after_first =
        max(1, C - 1)`` (with OverQ ``C + S``, see the module doc), ``bfree_after_first =
        max(1, R + C + S - 2)``, ``mesh_delay = R + C + S``, ``fifo_depth = latency + 1``.
    """
    r, c = config.rows, config.cols
    s = encoder_stages(config)
    # x register (edge e), encoder stages, PE (R-1, C-1) latches on e + 1 + S + (R-1) + (C-1),
    # the update one edge later
    mesh_delay = 1 + s + (r - 1) + (c - 1) + 1
    # last read of the old bank's row i: edge e_first + S + i + C - 1 by its own row, one edge
    # later by the row below with OverQ (upstream weight); row i is written at wfree + i
    last_read = s + c - 1 + (config.overq is not None)
    latency = mesh_delay + FIFO_DELAY
    return Timing(
        latency=latency,
        first_after_wlast=STATE_DELAY,
        wfree_after_first=max(STATE_DELAY, last_read),
        # last read of the old bias: the read stage of the last old beat, e_first - 1 + mesh_delay - 1
        bfree_after_first=max(STATE_DELAY, mesh_delay - 2),
        mesh_delay=mesh_delay,
        fifo_depth=latency + 1,
    )
