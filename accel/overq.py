"""OverQ: outlier activations borrowing neighbouring zero lanes (SPEC section 4).

Lanes take *raw codes* of ``config.lane_bits`` = W bits: ``integer << F | fraction`` with
F = ``config.frac_bits`` fraction bits (N in the precision modes, else 0) and an integer part of
2N bits (range, both) or N bits (precision). A lane is a *zero* iff its whole raw code is 0; an
*outlier* has an integer part >= 2^N. The encoder rewrites each fold of R lanes into R encoded
lanes, each an N-bit unsigned value with a :class:`LaneTag` that says which weight it multiplies:

==========  ============================  ===================================================
tag         weight                        term (accumulator units)
==========  ============================  ===================================================
OWN         w[k], the lane's own PE       ``value << F · w[k]``
UP          w[k-1], the PE directly above ``value << F · w[k-1]`` (a lane moved down one)
UP_HIGH     w[k-1]                        ``value << (N + F) · w[k-1]`` (an outlier's high part)
FRAC        w[k-1]                        ``value · w[k-1]`` (fraction bits of lane k-1)
==========  ============================  ===================================================

so the accumulator counts in units of 2^-F activation steps. The GEMM then follows SPEC section 2
with the fold's R encoded lanes as its steps, in lane order.

:func:`encode` / :func:`decode` / :func:`overq_gemm` are the vectorised model (loops run over the
R lanes of a fold only, never over vectors); :func:`reference_encode` and
:func:`reference_overq_gemm` are the same contract written one Python integer at a time, following
the SPEC text literally, for the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from accel.config import ArrayConfig, ConfigError
from accel.arith import GemmResult, as_int_matrix, check_operands, check_range, fold_count
from accel.reference import reference_output, reference_result
from accel.steps import accumulate_folds

__all__ = ["LaneTag", "Fate", "OverQStats", "EncodedLanes", "tag_shifts", "encode", "decode",
           "overq_stats", "overq_gemm", "reference_encode", "reference_overq_gemm"]


class LaneTag(IntEnum):
    """Which weight an encoded lane multiplies, and how its value is aligned (see module doc)."""

    OWN = 0       #: own weight w[k]
    UP = 1        #: weight of the PE directly above, w[k-1]: an original lane moved down one
    UP_HIGH = 2   #: w[k-1] shifted by N: the high part ``v >> N`` of the outlier above
    FRAC = 3      #: w[k-1], not shifted: the N fraction bits of lane k-1


class Fate(IntEnum):
    """What range overwrite did with an *original* lane."""

    PLAIN = 0      #: not an outlier (zeros included)
    HANDLED = 1    #: outlier whose chain reached a free zero (j <= c + 1)
    DISPLACED = 2  #: outlier moved down by an earlier chain, then clamped to 2^N - 1
    UNREACHED = 3  #: outlier with no free zero within reach, clamped to 2^N - 1


@dataclass(frozen=True)
class OverQStats:
    """Per-layer OverQ statistics (SPEC section 4), summed over vectors and folds.

    Attributes
    ----------
    handled : tuple of int
        ``handled[j - 1]``: outliers handled with chain length j = 1 ... c + 1.
    displaced : int
        Outliers moved down by an earlier chain, then clamped.
    unreached : int
        Outliers with no free zero within reach, clamped.
    precision_slots : int
        Zero lanes that carried the fraction bits of the lane above.
    lanes : int
        Lanes encoded (vectors x folds x R, zero padding of the last fold included).
    """

    handled: tuple[int, ...]
    displaced: int
    unreached: int
    precision_slots: int
    lanes: int

    @property
    def handled_total(self) -> int:
        """Outliers handled, all chain lengths."""
        return sum(self.handled)

    @property
    def outliers(self) -> int:
        """Outliers seen = handled + displaced + unreached."""
        return self.handled_total + self.displaced + self.unreached

    def __add__(self, other: "OverQStats") -> "OverQStats":
        if len(self.handled) != len(other.handled):
            raise ValueError(f"cannot add OverQ statistics of cascade depths {len(self.handled) - 1} "
                             f"and {len(other.handled) - 1}; both must use the same depth c")
        return OverQStats(tuple(a + b for a, b in zip(self.handled, other.handled)),
                          self.displaced + other.displaced, self.unreached + other.unreached,
                          self.precision_slots + other.precision_slots, self.lanes + other.lanes)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict; ``handled`` is keyed by chain length j."""
        return {"outliers": self.outliers, "handled_total": self.handled_total,
                "handled": {str(j + 1): n for j, n in enumerate(self.handled)},
                "displaced": self.displaced, "unreached": self.unreached,
                "precision_slots": self.precision_slots, "lanes": self.lanes}


@dataclass(frozen=True)
class EncodedLanes:
    """The encoder's output for ``x[T, K]``: F = ceil(K / R) folds of R lanes per vector.

    Attributes
    ----------
    value : int64 [T, F, R]
        Encoded lane values, unsigned N-bit (what a PE multiplies).
    tag : int8 [T, F, R]
        :class:`LaneTag` of each encoded lane.
    fate : int8 [T, F, R]
        :class:`Fate` of each *original* lane.
    chain : int16 [T, F, R]
        Chain length j of each handled outlier (original lane), 0 elsewhere.
    k : int
        K, the number of real lanes (lanes ``k ..`` of the last fold are zero padding).
    config : ArrayConfig
        The configuration that produced the encoding.
    """

    value: np.ndarray
    tag: np.ndarray
    fate: np.ndarray
    chain: np.ndarray
    k: int
    config: ArrayConfig

    @property
    def stats(self) -> OverQStats:
        """The statistics of this encoding."""
        reach = self.config.overq.cascade + 1
        counts = np.bincount(self.chain[self.fate == Fate.HANDLED], minlength=reach + 1)
        return OverQStats(tuple(int(n) for n in counts[1:reach + 1]),
                          int(np.count_nonzero(self.fate == Fate.DISPLACED)),
                          int(np.count_nonzero(self.fate == Fate.UNREACHED)),
                          int(np.count_nonzero(self.tag == LaneTag.FRAC)),
                          int(self.tag.size))


def tag_shifts(config: ArrayConfig) -> np.ndarray:
    """Left shift (bits) of an encoded value per :class:`LaneTag`, indexed by the tag.

    OWN and UP: F; UP_HIGH: N + F; FRAC: 0, with F = ``config.frac_bits``. Shifted values are
    in accumulator units (2^-F activation steps) and fit ``config.lane_bits`` unsigned bits.
    """
    f, n = config.frac_bits, config.act_bits
    return np.array([f, f, n + f, 0], dtype=np.int64)


def _require_overq(config: ArrayConfig, what: str) -> None:
    if config.overq is None:
        raise ConfigError(f"{what} needs an OverQ configuration (ArrayConfig(overq=OverQConfig(...))), "
                          "but config.overq is None")


def encode(x: object, config: ArrayConfig) -> EncodedLanes:
    """Encode raw lane codes ``x[T, K]`` (``config.lane_range``) fold by fold.

    Range overwrite (modes ``range``, ``both``) then precision overwrite (``precision``,
    ``both``), exactly as SPEC section 4. Lanes ``K ..`` of the last fold are zeros.

    Raises
    ------
    ConfigError
        When ``config.overq`` is None.
    ValueError
        When ``x`` is not a 2-D integer array or a code lies outside ``config.lane_range``.
    """
    _require_overq(config, "encode")
    x = as_int_matrix("x", x, "[T, K]")
    check_range("x", x, *config.lane_range, f"the unsigned {config.lane_bits}-bit OverQ lane range")
    return _encode(x, config)


def _encode(x: np.ndarray, config: ArrayConfig) -> EncodedLanes:
    """:func:`encode` on validated int64 codes."""
    t, k = x.shape
    r = config.rows
    folds = fold_count(k, r)
    raw = np.zeros((t, folds * r), dtype=np.int64)
    raw[:, :k] = x
    parts = _encode_folds(raw.reshape(t * folds, r), config)
    value, tag, fate, chain = (a.reshape(t, folds, r) for a in parts)
    return EncodedLanes(value, tag, fate, chain, k, config)


def _encode_folds(raw: np.ndarray, config: ArrayConfig
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Encode ``raw[n, R]``, one fold per row; returns value, tag, fate, chain (all [n, R])."""
    n_bits, f_bits = config.act_bits, config.frac_bits
    top = (1 << n_bits) - 1
    integer = raw >> f_bits
    zero = raw == 0
    outlier = integer > top
    value = np.minimum(integer, top)            # untouched lanes: integer part, outliers clamped
    tag = np.full(raw.shape, LaneTag.OWN, dtype=np.int8)
    fate = np.where(outlier, Fate.UNREACHED, Fate.PLAIN).astype(np.int8)
    chain = np.zeros(raw.shape, dtype=np.int16)
    touched = np.zeros(raw.shape, dtype=bool)   # used or moved by a range-overwrite chain
    if config.overq.has_range and outlier.any():
        _range_overwrite(integer, zero, outlier, config, value, tag, fate, chain, touched)
    if config.overq.has_precision:
        slot = np.zeros(raw.shape, dtype=bool)
        slot[:, 1:] = (zero[:, 1:] & ~touched[:, 1:] & ~touched[:, :-1]
                       & ~zero[:, :-1] & ~outlier[:, :-1])
        frac_above = np.zeros_like(raw)
        frac_above[:, 1:] = raw[:, :-1] & ((1 << f_bits) - 1)
        value[slot] = frac_above[slot]
        tag[slot] = LaneTag.FRAC
    return value, tag, fate, chain


def _range_overwrite(integer: np.ndarray, zero: np.ndarray, outlier: np.ndarray,
                     config: ArrayConfig, value: np.ndarray, tag: np.ndarray, fate: np.ndarray,
                     chain: np.ndarray, touched: np.ndarray) -> None:
    """One pass over the lanes of every fold (rows in parallel), updating the outputs in place.

    Chains are disjoint lane intervals ``[k, k + j]`` in increasing k, so the first zero below a
    lane that no chain covers is always still free: ``dist`` (the distance to the first zero
    below, >= R when there is none) gives j directly.
    """
    n_rows, r = integer.shape
    n_bits, top = config.act_bits, (1 << config.act_bits) - 1
    reach = config.overq.cascade + 1
    dist = np.full(integer.shape, r, dtype=np.int64)
    for k in range(r - 2, -1, -1):
        dist[:, k] = np.where(zero[:, k + 1], 1, dist[:, k + 1] + 1)
    start = np.full(n_rows, -2, dtype=np.int64)  # first lane of the chain that covers lane k
    end = np.full(n_rows, -1, dtype=np.int64)    # last lane (the used zero) of that chain
    for k in range(r):
        inside = end >= k                        # lane k lies in an earlier chain (k > start)
        out_k = outlier[:, k]
        new = out_k & ~inside & (dist[:, k] <= reach)
        fate[out_k & inside, k] = Fate.DISPLACED
        fate[new, k] = Fate.HANDLED
        chain[new, k] = dist[new, k]
        start[new] = k
        end[new] = k + dist[new, k]
        value[new, k] = integer[new, k] & top     # low part, own weight
        high = inside & (start == k - 1)
        moved = inside & ~high
        if k:
            value[high, k] = integer[high, k - 1] >> n_bits
            value[moved, k] = np.minimum(integer[moved, k - 1], top)
        tag[high, k] = LaneTag.UP_HIGH
        tag[moved, k] = LaneTag.UP
        touched[:, k] = new | inside


def decode(encoded: EncodedLanes) -> np.ndarray:
    """Effective value of every original lane, int64 [T, K], in accumulator units (2^-F steps).

    Each encoded lane is aligned (:func:`tag_shifts`) and credited to the lane whose weight it
    multiplies (its own, or the lane above). ``decode(encode(x)) @ w`` is the exact dot product
    of the handled values: outliers handled in full, clamped ones at 2^N - 1, fractions kept
    where a precision slot carried them.
    """
    shifted = encoded.value << tag_shifts(encoded.config)[encoded.tag]
    own = encoded.tag == LaneTag.OWN
    out = np.where(own, shifted, 0)
    out[:, :, :-1] += np.where(own, 0, shifted)[:, :, 1:]
    t = out.shape[0]
    return out.reshape(t, -1)[:, :encoded.k]


def overq_stats(x: object, config: ArrayConfig) -> OverQStats:
    """OverQ statistics of one layer's (one GEMM's) raw lane codes ``x[T, K]``."""
    return encode(x, config).stats


def overq_gemm(x: np.ndarray, w: np.ndarray, config: ArrayConfig, bias: np.ndarray) -> GemmResult:
    """The array's arithmetic with OverQ: SPEC section 2, steps = the encoded lanes of a fold.

    Called by :func:`accel.golden.gemm` (use that): operands arrive validated as int64
    (``x[T, K]`` raw codes in ``config.lane_range``, ``w[K, O]`` M-bit, ``bias[O]`` fitting Q, in
    accumulator units 2^-F). Each encoded lane contributes one P-bit step; the result is in
    accumulator units.
    """
    fold_bits = config.lane_bits + config.weight_bits + (config.rows - 1).bit_length()
    if fold_bits > 64:
        raise ConfigError(f"the OverQ golden model sums a fold exactly in int64: it needs "
                          f"lane_bits + weight_bits + ceil(log2(rows)) <= 64, here {config.lane_bits} "
                          f"+ {config.weight_bits} + {(config.rows - 1).bit_length()} = {fold_bits}")
    t, k = x.shape
    o = w.shape[1]
    r = config.rows
    if t == 0 or o == 0:
        empty = np.zeros((t, o), dtype=bool)
        return GemmResult(np.zeros((t, o), np.int64), empty, empty.copy(), 0, 0)
    enc = _encode(x, config)
    folds = enc.value.shape[1]
    shifted = enc.value << tag_shifts(config)[enc.tag]
    own = enc.tag == LaneTag.OWN
    w_pad = np.zeros((folds * r, o), dtype=np.int64)
    w_pad[:k] = w
    w_pad = w_pad.reshape(folds, r, o)

    def fold_steps(f: int) -> tuple[np.ndarray, np.ndarray]:
        # Lane i is two virtual steps: (own part, w[i]) and (upstream part, w[i-1]). One of the
        # two parts is 0, and a zero step never overflows nor changes s, so the P-bit steps and
        # events are exactly those of the R encoded lanes.
        own_part = np.where(own[:, f], shifted[:, f], 0)
        steps_x = np.stack([own_part, shifted[:, f] - own_part], axis=-1).reshape(t, 2 * r)
        up = np.concatenate([np.zeros((1, o), np.int64), w_pad[f, :-1]])  # nothing above lane 0
        return steps_x, np.stack([w_pad[f], up], axis=1).reshape(2 * r, o)

    return accumulate_folds((fold_steps(f) for f in range(folds)), bias, (t, o), config,
                            overq=enc.stats)


# --- slow reference, one Python integer at a time ------------------------------------------------

def reference_encode(codes: Sequence[int], config: ArrayConfig
                     ) -> tuple[list[tuple[int, LaneTag]], list[Fate], list[int]]:
    """Encode one fold of R raw codes, following the SPEC section 4 text literally (slow).

    Returns
    -------
    lanes : list of (value, LaneTag)
        The R encoded lanes.
    fates : list of Fate
        Per original lane.
    chains : list of int
        Chain length j per original lane (0 unless handled).
    """
    _require_overq(config, "reference_encode")
    r, n, f = config.rows, config.act_bits, config.frac_bits
    c = config.overq.cascade
    if len(codes) != r:
        raise ValueError(f"a fold has R = {r} lane codes, not {len(codes)}")
    codes = [int(v) for v in codes]
    ints = [v >> f for v in codes]
    fracs = [v & ((1 << f) - 1) for v in codes]
    is_zero = [v == 0 for v in codes]
    is_outlier = [i >= 1 << n for i in ints]
    clamp = (1 << n) - 1
    lanes = [(min(i, clamp), LaneTag.OWN) for i in ints]
    fates = [Fate.UNREACHED if o else Fate.PLAIN for o in is_outlier]
    chains = [0] * r
    used_zeros: set[int] = set()
    displaced: set[int] = set()
    touched: set[int] = set()
    if config.overq.has_range:
        for k in range(r):
            if not is_outlier[k]:
                continue
            if k in displaced:
                fates[k] = Fate.DISPLACED
                continue
            free = [j for j in range(1, r - k) if is_zero[k + j] and k + j not in used_zeros]
            if not free or free[0] > c + 1:
                continue                                   # unreached: stays clamped
            j = free[0]
            fates[k], chains[k] = Fate.HANDLED, j
            used_zeros.add(k + j)
            lanes[k] = (ints[k] % (1 << n), LaneTag.OWN)
            lanes[k + 1] = (ints[k] >> n, LaneTag.UP_HIGH)
            for i in range(k + 1, k + j):                  # lanes k+1 .. k+j-1 move down one
                lanes[i + 1] = (min(ints[i], clamp), LaneTag.UP)
                if is_outlier[i]:
                    displaced.add(i)
            touched.update(range(k, k + j + 1))
    if config.overq.has_precision:
        for k in range(r - 1):
            if (is_zero[k + 1] and k + 1 not in used_zeros and k not in touched
                    and not is_zero[k] and not is_outlier[k]):
                lanes[k + 1] = (fracs[k], LaneTag.FRAC)
    return lanes, fates, chains


def reference_overq_gemm(x: object, w: object, config: ArrayConfig, bias: object | None = None
                         ) -> GemmResult:
    """:func:`overq_gemm` written one Python integer at a time on :func:`reference_encode` (slow)."""
    _require_overq(config, "reference_overq_gemm")
    x, w, b = check_operands(x, w, config, bias)
    t_n, k_n = x.shape
    r, f, n = config.rows, config.frac_bits, config.act_bits
    shift = {LaneTag.OWN: f, LaneTag.UP: f, LaneTag.UP_HIGH: n + f, LaneTag.FRAC: 0}

    def weight(k: int, o: int) -> int:
        return int(w[k, o]) if 0 <= k < k_n else 0         # rows beyond K are zero padding

    encoded = []                                          # per vector: (f0, lanes) per fold
    for t in range(t_n):
        folds = []
        for f0 in range(0, k_n, r):
            lanes = reference_encode([int(x[t, k]) if k < k_n else 0 for k in range(f0, f0 + r)],
                                     config)[0]
            if lanes[0][1] != LaneTag.OWN:
                raise AssertionError("an encoded lane took a weight across a fold boundary")
            folds.append((f0, lanes))
        encoded.append(folds)

    def output(t: int, o: int) -> tuple[int, int, int]:
        terms = ([(value << shift[tag]) * weight(f0 + i if tag == LaneTag.OWN else f0 + i - 1, o)
                  for i, (value, tag) in enumerate(lanes)] for f0, lanes in encoded[t])
        return reference_output(terms, int(b[o]), config)

    return reference_result(t_n, w.shape[1], output)
