"""The canonical schedule of SPEC section 6: how a GEMM becomes tile steps and stream beats.

This is the one description of the schedule. The cocotb driver sends exactly these beats and the
TLM counts cycles from :func:`steps`; nothing else re-derives the loop order.

Loop order, outermost first: column group g (``ceil(O / C)``), chunk of at most ``acc_depth``
vectors ``[t0, t1)``, row fold f (``ceil(K / R)``). Each step sends tile (f, g) on ``w`` (R beats,
``w_last`` on beat R - 1) and its bias beat on ``b``, then the chunk on ``x`` with
``x_addr = t - t0``, ``x_first`` on the chunk's first beat, ``x_init`` iff f = 0 and ``x_emit`` iff f
is the last fold. Every ``x_emit`` beat yields one ``y`` beat, in order.

Lane packing (:func:`pack_lanes`, :func:`unpack_lanes`) is also defined here, once: lane c of a
word sits at bits ``c * width ..``, two's complement.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from accel.arith import GemmResult, check_operands, fold_count, group_count
from accel.config import ArrayConfig

__all__ = ["Step", "Beats", "step_table", "steps", "beats", "expected_lanes",
           "put_bits", "get_bits", "pack_lanes", "unpack_lanes", "WORD_BITS"]


@dataclass(frozen=True)
class Step:
    """One tile step of the canonical schedule.

    Attributes
    ----------
    g : int
        Column group: output channels ``[g * C, min((g + 1) * C, O))``.
    t0, t1 : int
        The chunk of vectors ``[t0, t1)`` (``t1 - t0 <= acc_depth``), addresses ``t - t0``.
    f : int
        Row fold: reduction rows ``[f * R, min((f + 1) * R, K))``.
    folds : int
        Number of row folds F of the GEMM (``emit`` iff ``f == folds - 1``).
    """

    g: int
    t0: int
    t1: int
    f: int
    folds: int

    @property
    def vectors(self) -> int:
        """Number of ``x`` beats of this step (``t1 - t0``)."""
        return self.t1 - self.t0

    @property
    def init(self) -> bool:
        """``x_init`` of every beat of this step: the first fold preloads the bias."""
        return self.f == 0

    @property
    def emit(self) -> bool:
        """``x_emit`` of every beat of this step: the last fold sends results on ``y``."""
        return self.f == self.folds - 1


def _check_shape(t: int, k: int, o: int) -> None:
    for name, v, lo in (("T", t, 0), ("K", k, 1), ("O", o, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"GEMM size {name} must be an integer >= {lo}, not {v!r}")


def step_table(t: int, k: int, o: int, config: ArrayConfig
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The canonical tile steps as arrays ``(g, t0, t1, f)`` (int64, one entry per step), in
    schedule order: column group outermost, then chunks of ``acc_depth`` vectors, then folds.

    Cheap (no operands): ``G * ceil(T / acc_depth) * F`` steps. A tile is re-sent for every chunk.
    """
    _check_shape(t, k, o)
    folds, d = fold_count(k, config.rows), config.acc_depth
    g, t0, f = (a.ravel() for a in np.meshgrid(np.arange(group_count(o, config.cols)),
                                               np.arange(0, t, d), np.arange(folds),
                                               indexing="ij"))
    return g, t0, np.minimum(t0 + d, t), f


def steps(t: int, k: int, o: int, config: ArrayConfig) -> list[Step]:
    """The canonical tile steps of a GEMM ``Y[T, O] = X[T, K] . W[K, O]``, in schedule order
    (:func:`step_table` as :class:`Step` records)."""
    table = step_table(t, k, o, config)
    folds = fold_count(k, config.rows)
    return [Step(int(g), int(t0), int(t1), int(f), folds) for g, t0, t1, f in zip(*table)]


# --- lane packing ----------------------------------------------------------------------------

#: Bits of one word of a packed array (:func:`put_bits`, :func:`get_bits`).
WORD_BITS = 32


def _mask(width: int) -> np.uint64:
    return np.uint64((1 << width) - 1)


def put_bits(words: np.ndarray, values: np.ndarray, pos: int, width: int) -> None:
    """OR ``width``-bit values (uint64 ``[n]``, reduced modulo 2^width) into bits ``pos ..`` of
    rows of 32-bit words (uint32 ``[n, W]``, bit b of a row in word ``b // 32``). The one
    bit-level packing: :func:`pack_lanes` and the beat records (:mod:`sim.records`) use it."""
    u = np.asarray(values, dtype=np.uint64) & _mask(width)
    j, s = divmod(pos, WORD_BITS)
    words[:, j] |= ((u << np.uint64(s)) & np.uint64(0xFFFF_FFFF)).astype(np.uint32)
    done, k = WORD_BITS - s, 1
    while done < width:                  # a value spans at most three words
        words[:, j + k] |= ((u >> np.uint64(done)) & np.uint64(0xFFFF_FFFF)).astype(np.uint32)
        done, k = done + WORD_BITS, k + 1


def get_bits(words: np.ndarray, pos: int, width: int, signed: bool = False) -> np.ndarray:
    """Inverse of :func:`put_bits`: the ``width``-bit field at bits ``pos ..`` of each row, as
    int64 (two's complement when ``signed``; a 64-bit unsigned field keeps its bits)."""
    j, s = divmod(pos, WORD_BITS)
    v = words[:, j].astype(np.uint64) >> np.uint64(s)
    got, k = WORD_BITS - s, 1
    while got < width:
        v |= words[:, j + k].astype(np.uint64) << np.uint64(got)
        got, k = got + WORD_BITS, k + 1
    v &= _mask(width)
    out = v.view(np.int64)
    if signed and width < 64:
        out = out - (((v >> np.uint64(width - 1)) & np.uint64(1)).astype(np.int64) << width)
    return out


def _check_width(width: int) -> None:
    if not 1 <= width <= 64:
        raise ValueError(f"lane width must be between 1 and 64 bits, not {width}")


def pack_lanes(values: object, width: int) -> list[int]:
    """Pack rows of lanes into words: lane c at bits ``c * width ..``, two's complement.

    Parameters
    ----------
    values : int [n, L]
        Lane values; each must fit ``width`` bits signed or unsigned (it is reduced modulo
        2^width, so -1 and 2^width - 1 give the same bits).
    width : int
        Lane width in bits (1 .. 64).

    Returns
    -------
    list of int
        n words of ``L * width`` bits (non-negative Python ints).
    """
    v = np.asarray(values, dtype=np.int64)
    if v.ndim != 2:
        raise ValueError(f"pack_lanes needs a 2-D array [words, lanes], not shape {v.shape}")
    _check_width(width)
    n, lanes = v.shape
    words = np.zeros((n, max(1, -(-lanes * width // WORD_BITS))), dtype="<u4")
    u = np.ascontiguousarray(v).view(np.uint64)
    for c in range(lanes):
        put_bits(words, u[:, c], c * width, width)
    return [int.from_bytes(row.tobytes(), "little") for row in words]


def unpack_lanes(words: list[int] | np.ndarray, lanes: int, width: int, signed: bool = True
                 ) -> np.ndarray:
    """Inverse of :func:`pack_lanes`: words of ``lanes * width`` bits to int64 ``[n, lanes]``.

    Lane c is bits ``c * width ..`` of each word, read as two's complement when ``signed``.
    A word wider than ``lanes * width`` bits is an error.
    """
    _check_width(width)
    total = lanes * width
    nwords = max(1, -(-total // WORD_BITS))
    words = [int(w) for w in words]
    for i, w in enumerate(words):
        if w < 0 or w >> total:
            raise ValueError(f"word {i} = {w:#x} does not fit {lanes} lanes of {width} bits")
    if not words:
        return np.zeros((0, lanes), dtype=np.int64)
    raw = np.frombuffer(b"".join(w.to_bytes(4 * nwords, "little") for w in words),
                        dtype="<u4").reshape(len(words), nwords)
    return np.stack([get_bits(raw, c * width, width, signed) for c in range(lanes)], axis=1)


# --- beats ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Beats:
    """Every beat of one GEMM under the canonical schedule: lane values and the ``x`` flags.

    Attributes
    ----------
    w_lanes : int64 [n_w, C]
        One weight-tile row per beat (R beats per step), signed M-bit lanes.
    w_last : bool [n_w]
        True exactly on beat R - 1 of each tile.
    b_lanes : int64 [n_b, C]
        One bias beat per step, signed Q-bit lanes.
    x_lanes : int64 [n_x, R]
        One vector per beat, raw lane codes of W = ``config.lane_bits`` bits.
    x_addr : int64 [n_x]
        ``t - t0``.
    x_first, x_init, x_emit : bool [n_x]
    y_order : int64 [n_y, 2]
        ``(t, g)`` of each expected ``y`` beat, in order of the ``x_emit`` beats.
    widths : (int, int, int)
        Lane widths of ``w``, ``b`` and ``x`` (M, Q, W) in bits.

    ``w_data``, ``b_data`` and ``x_data`` are the payload words as on the ports (Python ints,
    :func:`pack_lanes`), computed on first use.
    """

    w_lanes: np.ndarray
    w_last: np.ndarray
    b_lanes: np.ndarray
    x_lanes: np.ndarray
    x_addr: np.ndarray
    x_first: np.ndarray
    x_init: np.ndarray
    x_emit: np.ndarray
    y_order: np.ndarray
    widths: tuple[int, int, int]

    @cached_property
    def w_data(self) -> list[int]:
        """``C * M``-bit ``w_data`` words."""
        return pack_lanes(self.w_lanes, self.widths[0])

    @cached_property
    def b_data(self) -> list[int]:
        """``C * Q``-bit ``b_data`` words."""
        return pack_lanes(self.b_lanes, self.widths[1])

    @cached_property
    def x_data(self) -> list[int]:
        """``R * W``-bit ``x_data`` words."""
        return pack_lanes(self.x_lanes, self.widths[2])


def beats(x: object, w: object, bias: object | None, config: ArrayConfig) -> Beats:
    """The beats of ``Y = X . W (+ bias)`` on ``w``, ``b`` and ``x``, and the expected ``y`` order.

    Vectorised over the steps of :func:`step_table` (no Python loop per beat).

    Parameters
    ----------
    x : int [T, K]
        Lane codes (``config.lane_range``); rows beyond K are sent as zero lanes.
    w : int [K, O]
        Signed M-bit weights; rows >= K and columns >= O of a tile are zeros.
    bias : int [O] or None
        Q-bit bias (zeros when None).
    """
    x, w, b = check_operands(x, w, config, bias)
    t_n, k_n = x.shape
    o_n = w.shape[1]
    r, c = config.rows, config.cols
    sg, st0, st1, sf = step_table(t_n, k_n, o_n, config)
    folds, groups = fold_count(k_n, config.rows), group_count(o_n, config.cols)
    wp = np.zeros((folds * r, groups * c), dtype=np.int64)
    wp[:k_n, :o_n] = w
    xp = np.zeros((t_n, folds, r), dtype=np.int64)
    xp.reshape(t_n, folds * r)[:, :k_n] = x
    bp = np.zeros(groups * c, dtype=np.int64)
    bp[:o_n] = b
    # tile (f, g) as wt[f, g]: R rows of C lanes
    wt = wp.reshape(folds, r, groups, c).transpose(0, 2, 1, 3)
    w_lanes = wt[sf, sg].reshape(-1, c)
    b_lanes = bp.reshape(groups, c)[sg]
    # x beats: step s sends vectors t0[s] .. t1[s] - 1 with fold f[s]
    n = st1 - st0
    step = np.repeat(np.arange(n.size), n)
    start = np.cumsum(n) - n
    addr = np.arange(step.size) - start[step]
    t = st0[step] + addr
    f = sf[step]
    emit = f == folds - 1
    return Beats(w_lanes, np.tile(np.arange(r) == r - 1, n.size), b_lanes, xp[t, f],
                 addr.astype(np.int64), addr == 0, f == 0, emit,
                 np.stack([t[emit], sg[step][emit]], axis=1).astype(np.int64).reshape(-1, 2),
                 (config.weight_bits, config.out_bits, config.lane_bits))


def expected_lanes(result: GemmResult, y_order: np.ndarray, config: ArrayConfig
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expected ``y`` beats as lanes: ``(y [n_y, C], pe_ovf [n_y, C], acc_ovf [n_y, C])``.

    Lane c of beat ``(t, g)`` is output ``(t, g * C + c)``; columns >= O are 0 with clear flags.
    """
    t_n, o_n = result.y.shape
    c = config.cols
    groups = group_count(o_n, config.cols) if o_n else 0
    width = groups * c

    def pad(a: np.ndarray) -> np.ndarray:
        out = np.zeros((t_n, width), dtype=a.dtype)
        out[:, :o_n] = a
        return out.reshape(t_n, groups, c)

    t, g = y_order[:, 0], y_order[:, 1]
    return pad(result.y)[t, g], pad(result.pe_overflow)[t, g], pad(result.acc_overflow)[t, g]
