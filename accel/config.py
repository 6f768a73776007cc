"""The array configuration: the one record of every hardware parameter (SPEC section 1).

Every other part of accel-hw (golden model, RTL generator, TLM, quantizers, sweeps) takes an
:class:`ArrayConfig` and reads widths and ranges from it; nothing repeats a parameter or a
formula that lives here.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from accel.arith import code_range

__all__ = ["ConfigError", "OverQConfig", "ArrayConfig", "add_config_arguments", "config_from_args"]

#: Version of the serialised form; part of the hash so that a format change never reuses a cache.
SCHEMA_VERSION = 1

OVERFLOW_MODES = ("wrap", "saturate")
OVERQ_MODES = ("range", "precision", "both")
MAX_OPERAND_BITS = 16
MAX_ACC_BITS = 64  # the golden model computes in int64


class ConfigError(ValueError):
    """An invalid configuration value; the message names the field, the value and what is valid."""


def _check_int(name: str, value: Any, lo: int, hi: int | None = None, why: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        valid = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise ConfigError(f"{name} must be {valid}{why}, not {value}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, not {value!r}")


@dataclass(frozen=True, kw_only=True)
class OverQConfig:
    """OverQ outlier handling (SPEC section 4).

    Parameters
    ----------
    mode : {"range", "precision", "both"}
        ``range`` lets an outlier borrow a neighbouring zero lane for its high N bits;
        ``precision`` lets a zero lane carry N fraction bits of its upstream neighbour;
        ``both`` does range overwrite first, then precision overwrite on the zeros left.
    cascade : int
        Cascade depth c >= 0: an outlier may shift up to c lanes down to reach a zero
        (reach j <= c + 1 lanes).
    """

    mode: Literal["range", "precision", "both"] = field(
        default="range", metadata={"help": "OverQ overwrite mode"})
    cascade: int = field(default=0, metadata={"help": "OverQ cascade depth c (reach c + 1 lanes)"})

    def __post_init__(self) -> None:
        _check_choice("overq.mode", self.mode, OVERQ_MODES)
        _check_int("overq.cascade", self.cascade, 0)

    @property
    def has_range(self) -> bool:
        """True when range overwrite (outliers borrowing zeros) is enabled."""
        return self.mode in ("range", "both")

    @property
    def has_precision(self) -> bool:
        """True when precision overwrite (fraction bits in zeros) is enabled."""
        return self.mode in ("precision", "both")


@dataclass(frozen=True, kw_only=True)
class ArrayConfig:
    """A weight-stationary systolic array and its arithmetic (SPEC sections 1-3).

    All widths are in bits. Weights are always signed two's complement; activations are
    unsigned or signed. Derived widths and ranges are properties; variants are made with
    :func:`dataclasses.replace`, which re-validates.
    """

    rows: int = field(default=8, metadata={"help": "R: array height, reduction lanes"})
    cols: int = field(default=8, metadata={"help": "C: array width, output lanes"})
    act_bits: int = field(default=8, metadata={"help": "N: activation width in bits"})
    act_signed: bool = field(default=False, metadata={"help": "activations are signed (default unsigned)"})
    weight_bits: int = field(default=8, metadata={"help": "M: weight width in bits (signed)"})
    pe_acc_bits: int = field(default=32, metadata={"help": "P: partial-sum width inside the array"})
    out_acc_bits: int | None = field(
        default=None, metadata={"help": "Q: output accumulator width, >= P"})
    overflow: Literal["wrap", "saturate"] = field(
        default="wrap", metadata={"help": "overflow mode of the P- and Q-bit adders"})
    acc_depth: int = field(default=64, metadata={"help": "output accumulator entries (power of two)"})
    overq: OverQConfig | None = field(default=None, metadata={"help": "OverQ settings, or none"})

    def __post_init__(self) -> None:
        _check_int("rows", self.rows, 1, 1024)
        _check_int("cols", self.cols, 1, 1024)
        _check_int("act_bits", self.act_bits, 1, MAX_OPERAND_BITS)
        if not isinstance(self.act_signed, bool):
            raise ConfigError(f"act_signed must be true or false, not {self.act_signed!r}")
        _check_int("weight_bits", self.weight_bits, 2, MAX_OPERAND_BITS)
        _check_choice("overflow", self.overflow, OVERFLOW_MODES)
        _check_int("acc_depth", self.acc_depth, 1, 1 << 20)
        if self.acc_depth & (self.acc_depth - 1):
            raise ConfigError(f"acc_depth must be a power of two (1, 2, 4, ...), not {self.acc_depth}")
        if self.overq is not None:
            if not isinstance(self.overq, OverQConfig):
                raise ConfigError(f"overq must be an OverQConfig or None, not {self.overq!r}")
            if self.act_signed:
                raise ConfigError("overq requires unsigned activations (act_signed = false); "
                                  "OverQ with signed activations is not supported")
            if self.rows < 2:
                raise ConfigError(f"overq needs rows >= 2 (an outlier borrows the lane below), "
                                  f"not rows = {self.rows}")
            _check_int("overq.cascade", self.overq.cascade, 0, self.rows - 2,
                       f" for rows = {self.rows} (reach c + 1 must stay inside a fold)")
        _check_int("pe_acc_bits", self.pe_acc_bits, self.min_pe_acc_bits, MAX_ACC_BITS,
                   f" ({self._min_p_reason})")
        if self.out_acc_bits is not None:
            _check_int("out_acc_bits", self.out_acc_bits, self.pe_acc_bits, MAX_ACC_BITS,
                       " (Q may not be narrower than P = "
                       f"{self.pe_acc_bits}, nor exceed the golden model's int64)")

    # --- derived widths -------------------------------------------------------------------
    @property
    def out_bits(self) -> int:
        """Q: the resolved output accumulator width (``out_acc_bits``, or P when unset)."""
        return self.pe_acc_bits if self.out_acc_bits is None else self.out_acc_bits

    @property
    def product_bits(self) -> int:
        """Width of one exact N x M-bit product (N + M)."""
        return self.act_bits + self.weight_bits

    @property
    def lane_bits(self) -> int:
        """W: width of one activation lane on ``x_data`` (N, or 2N / 3N raw codes with OverQ)."""
        if self.overq is None:
            return self.act_bits
        return {"range": 2, "precision": 2, "both": 3}[self.overq.mode] * self.act_bits

    @property
    def frac_bits(self) -> int:
        """Fraction bits carried per lane with OverQ precision modes (N), else 0."""
        return self.act_bits if self.overq is not None and self.overq.has_precision else 0

    @property
    def min_pe_acc_bits(self) -> int:
        """The smallest legal P: N + M, or 2N + M / 3N + M with OverQ (SPEC sections 2, 4)."""
        if self.overq is None:
            return self.product_bits
        return self.lane_bits + self.weight_bits

    @property
    def _min_p_reason(self) -> str:
        n, m = self.act_bits, self.weight_bits
        if self.overq is None:
            return f"P must hold one exact {n}x{m}-bit product, N + M = {n + m}"
        return (f"OverQ {self.overq.mode} lanes are {self.lane_bits} bits, "
                f"so P must be at least {self.lane_bits} + M = {self.min_pe_acc_bits}")

    @property
    def addr_bits(self) -> int:
        """Width of ``x_addr`` / ``y_addr``: max(1, log2(acc_depth))."""
        return max(1, (self.acc_depth - 1).bit_length())

    @property
    def acc_word_bits(self) -> int:
        """Bits of one accumulator memory word: C lanes of Q bits plus 2C sticky flags."""
        return self.cols * self.out_bits + 2 * self.cols

    # --- operand ranges -------------------------------------------------------------------
    @property
    def act_range(self) -> tuple[int, int]:
        """Inclusive range of an activation code on the array (N bits, the declared sign)."""
        return code_range(self.act_bits, self.act_signed)

    @property
    def lane_range(self) -> tuple[int, int]:
        """Inclusive range of a raw lane code on ``x_data`` (unsigned W bits with OverQ)."""
        if self.overq is None:
            return self.act_range
        return code_range(self.lane_bits, False)

    @property
    def weight_range(self) -> tuple[int, int]:
        """Inclusive range of a weight (signed M bits, -2^(M-1) included)."""
        return code_range(self.weight_bits, True)

    @property
    def pe_range(self) -> tuple[int, int]:
        """Inclusive range of a P-bit partial sum."""
        return code_range(self.pe_acc_bits, True)

    @property
    def out_range(self) -> tuple[int, int]:
        """Inclusive range of a Q-bit accumulator value (and of a bias)."""
        return code_range(self.out_bits, True)

    # --- identity and (de)serialisation -----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field, Q resolved, OverQ as a nested dict or None."""
        d = dataclasses.asdict(self)
        d["out_acc_bits"] = self.out_bits
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ArrayConfig":
        """Build from a dict as written by :meth:`to_dict` (unknown keys are an error)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown configuration field(s) {', '.join(unknown)}; "
                              f"valid fields are {', '.join(sorted(names))}")
        data = dict(data)
        oq = data.get("overq")
        if isinstance(oq, dict):
            oq_names = {f.name for f in dataclasses.fields(OverQConfig)}
            bad = sorted(set(oq) - oq_names)
            if bad:
                raise ConfigError(f"unknown overq field(s) {', '.join(bad)}; "
                                  f"valid fields are {', '.join(sorted(oq_names))}")
            data["overq"] = OverQConfig(**oq)
        return cls(**data)

    @property
    def hash(self) -> str:
        """Stable 12-hex-digit hash of the resolved configuration, for caches and databases."""
        blob = json.dumps({"schema": SCHEMA_VERSION, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def name(self) -> str:
        """A readable default module name, e.g. ``sa8x8_n8u_m8_p32q32_wrap_d64``."""
        sign = "s" if self.act_signed else "u"
        base = (f"sa{self.rows}x{self.cols}_n{self.act_bits}{sign}_m{self.weight_bits}"
                f"_p{self.pe_acc_bits}q{self.out_bits}_{self.overflow}_d{self.acc_depth}")
        if self.overq is not None:
            base += f"_oq{self.overq.mode}{self.overq.cascade}"
        return base

    def save(self, path: str | Path) -> None:
        """Write as JSON (``.json``) or TOML (``.toml``), chosen by the file suffix."""
        path = Path(path)
        if path.suffix == ".json":
            path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        elif path.suffix == ".toml":
            path.write_text(_to_toml(self.to_dict()))
        else:
            raise ConfigError(f"config file must end in .json or .toml, not {path.name!r}")

    @classmethod
    def load(cls, path: str | Path) -> "ArrayConfig":
        """Read a JSON or TOML file written by :meth:`save` (or by hand)."""
        path = Path(path)
        if path.suffix not in (".json", ".toml"):
            raise ConfigError(f"config file must end in .json or .toml, not {path.name!r}")
        try:
            text = path.read_text()
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
        try:
            data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"config file {path} is not valid {path.suffix[1:].upper()}: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a table of fields")
        return cls.from_dict(data)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    return str(v)


def _to_toml(d: dict[str, Any]) -> str:
    lines = [f"{k} = {_toml_value(v)}" for k, v in d.items() if not isinstance(v, dict) and v is not None]
    for k, v in d.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]"] + [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


# --- command-line flags derived from the fields -------------------------------------------------

def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE`` and one flag per :class:`ArrayConfig` field (defaults from the class)."""
    group = parser.add_argument_group("array configuration (flags override --config)")
    group.add_argument("--config", metavar="FILE", help="JSON or TOML configuration file")
    for f in dataclasses.fields(ArrayConfig):
        help_ = f.metadata["help"]
        if f.name == "overq":
            for of in dataclasses.fields(OverQConfig):
                kw: dict[str, Any] = {"help": f"{of.metadata['help']} (enables OverQ; default {of.default})"}
                if of.name == "mode":
                    kw["choices"] = OVERQ_MODES
                else:
                    kw.update(type=int, metavar="INT")
                group.add_argument(_flag(f"overq_{of.name}"), dest=f"overq_{of.name}", default=None, **kw)
        elif f.name == "act_signed":
            group.add_argument(_flag(f.name), dest=f.name, default=None,
                               action=argparse.BooleanOptionalAction, help=f"{help_}")
        elif f.name == "overflow":
            group.add_argument(_flag(f.name), dest=f.name, default=None, choices=OVERFLOW_MODES,
                               help=f"{help_} (default {f.default})")
        else:
            group.add_argument(_flag(f.name), dest=f.name, type=int, default=None, metavar="INT",
                               help=f"{help_} (default {'P' if f.default is None else f.default})")


def config_from_args(args: argparse.Namespace) -> ArrayConfig:
    """Build the configuration from ``--config`` (if given) overridden by explicit flags."""
    base = ArrayConfig.load(args.config) if getattr(args, "config", None) else ArrayConfig()
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(ArrayConfig):
        if f.name != "overq" and getattr(args, f.name, None) is not None:
            changes[f.name] = getattr(args, f.name)
    mode, cascade = getattr(args, "overq_mode", None), getattr(args, "overq_cascade", None)
    if mode is not None or cascade is not None:
        old = base.overq or OverQConfig()
        changes["overq"] = OverQConfig(mode=mode if mode is not None else old.mode,
                                       cascade=cascade if cascade is not None else old.cascade)
    return dataclasses.replace(base, **changes)
