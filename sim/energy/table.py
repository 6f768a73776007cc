"""Per-action energy tables (in the style of Accelergy's component tables), read from TOML.

The default table (``horowitz_45nm.toml`` next to this module) is at 45 nm: integer add and
multiply from Horowitz (ISSCC 2014), a register bit from Aladdin (scaled 40 -> 45 nm by a stated
rule), the accumulator memory from CACTI at the table's node. A user table of another technology
has the same keys (see the default file, every entry with ``source`` and ``scaling``).

Between the points of ``add`` and ``multiply``, energy follows the power law through the two
nearest points, ``e(x) = e1 * (x / x1) ** (ln(e2 / e1) / ln(x2 / x1))`` with x the operand width
(add) or the partial-product count N * M (multiply); beyond the points the law of the two end
points is used and the lookup says it extrapolated.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_TABLE", "EnergyTable", "Curve", "Lookup", "load_table", "default_table"]

#: File name of the default table inside this package.
DEFAULT_TABLE = "horowitz_45nm.toml"

_MODELS = ("cacti", "registers", "fixed")


@dataclass(frozen=True)
class Lookup:
    """One energy looked up in a table: the value and how it was obtained."""

    pj: float
    rule: str
    extrapolated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"pj": self.pj, "rule": self.rule, "extrapolated": self.extrapolated}


@dataclass(frozen=True)
class Curve:
    """Energy points ``(x, pJ)`` with their source and scaling rule, and the power-law lookup."""

    points: tuple[tuple[float, float], ...]
    source: str
    scaling: str

    def at(self, x: float, label: str) -> Lookup:
        """Energy at ``x`` (power law through the two nearest points; flagged beyond them)."""
        pts = self.points
        i = next((j for j in range(1, len(pts) - 1) if x <= pts[j][0]), len(pts) - 1)
        (x1, e1), (x2, e2) = pts[i - 1], pts[i]
        exponent = math.log(e2 / e1) / math.log(x2 / x1)
        pj = e1 * (x / x1) ** exponent
        outside = x < pts[0][0] or x > pts[-1][0]
        rule = (f"{label}: power law through ({x1:g}, {e1:g} pJ) and ({x2:g}, {e2:g} pJ), "
                f"exponent {exponent:.4f}" + (", extrapolated" if outside else ""))
        return Lookup(pj, rule, outside)


@dataclass(frozen=True)
class EnergyTable:
    """A technology's per-action energies.

    Attributes
    ----------
    node_nm : float
        Technology node of every entry, in nm.
    name : str
        What the table is.
    add : Curve
        Integer addition by operand width in bits.
    multiply : Curve
        Integer multiplication by partial-product count N * M (points given as square widths).
    register_pj_per_bit : float
        One register bit written or read, in pJ.
    register_source, register_scaling : str
        Where that number comes from and how it was brought to ``node_nm``.
    accumulator_model : {"cacti", "registers", "fixed"}
        How accumulator-memory accesses are priced.
    accumulator_read_pj, accumulator_write_pj : float or None
        Per-word energies of a ``fixed`` accumulator model.
    accumulator_source : str
        Where accumulator energies come from.
    path : str
        The file read.
    """

    node_nm: float
    name: str
    add: Curve
    multiply: Curve
    register_pj_per_bit: float
    register_source: str
    register_scaling: str
    accumulator_model: str
    accumulator_read_pj: float | None
    accumulator_write_pj: float | None
    accumulator_source: str
    path: str

    def add_pj(self, bits: int) -> Lookup:
        """One ``bits``-bit integer addition."""
        return self.add.at(bits, f"{bits}-bit add")

    def multiply_pj(self, n: int, m: int) -> Lookup:
        """One N x M-bit integer multiplication (looked up at N * M partial-product bits)."""
        return self.multiply.at(n * m, f"{n}x{m}-bit multiply at N*M = {n * m}")

    def to_dict(self) -> dict[str, Any]:
        return {"node_nm": self.node_nm, "name": self.name, "path": self.path,
                "add": {"points": self.add.points, "source": self.add.source,
                        "scaling": self.add.scaling},
                "multiply": {"points": self.multiply.points, "source": self.multiply.source,
                             "scaling": self.multiply.scaling},
                "register": {"pj_per_bit": self.register_pj_per_bit,
                             "source": self.register_source, "scaling": self.register_scaling},
                "accumulator": {"model": self.accumulator_model,
                                "read_pj": self.accumulator_read_pj,
                                "write_pj": self.accumulator_write_pj,
                                "source": self.accumulator_source}}


class _Reader:
    def __init__(self, data: dict[str, Any], path: str):
        self.data, self.path = data, path

    def fail(self, what: str) -> ValueError:
        return ValueError(f"energy table {self.path}: {what}")

    def section(self, name: str) -> dict[str, Any]:
        value = self.data.get(name)
        if not isinstance(value, dict):
            raise self.fail(f"needs a [{name}] section")
        return value

    def number(self, section: str, key: str, table: dict[str, Any]) -> float:
        v = table.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise self.fail(f"[{section}] {key} must be a positive number, not {v!r}")
        return float(v)

    def text(self, section: str, key: str, table: dict[str, Any]) -> str:
        v = table.get(key)
        if not isinstance(v, str) or not v.strip():
            raise self.fail(f"[{section}] needs {key} = \"...\" (every entry states its {key})")
        return v

    def curve(self, name: str, square: bool) -> Curve:
        table = self.section(name)
        raw = table.get("points")
        if not isinstance(raw, list) or len(raw) < 2:
            raise self.fail(f"[{name}] points must list at least two {{ bits = B, pj = E }} entries")
        points = []
        for p in raw:
            if not isinstance(p, dict):
                raise self.fail(f"[{name}] points entries must be {{ bits = B, pj = E }}, not {p!r}")
            bits, pj = self.number(name, "bits", p), self.number(name, "pj", p)
            points.append((bits * bits if square else bits, pj))
        points.sort()
        if len({x for x, _ in points}) != len(points):
            raise self.fail(f"[{name}] points must have distinct widths")
        return Curve(tuple(points), self.text(name, "source", table),
                     self.text(name, "scaling", table))


def load_table(path: str | Path | None = None) -> EnergyTable:
    """Read an energy table from TOML (``None``: the default 45 nm table).

    Raises
    ------
    ValueError
        For a missing section or key, a non-positive number or an entry without ``source`` /
        ``scaling``; the message names the file and the key.
    FileNotFoundError
        If ``path`` does not exist.
    """
    if path is None:
        text = resources.files(__package__).joinpath(DEFAULT_TABLE).read_text()
        name = f"(default) {DEFAULT_TABLE}"
    else:
        text, name = Path(path).read_text(), str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"energy table {name} is not valid TOML: {e}") from None
    r = _Reader(data, name)
    tech = r.section("technology")
    reg = r.section("register")
    acc = r.section("accumulator")
    model = acc.get("model", "fixed" if "read_pj" in acc else None)
    if model not in _MODELS:
        raise r.fail(f"[accumulator] model must be one of {', '.join(_MODELS)}, not {model!r}")
    read = r.number("accumulator", "read_pj", acc) if model == "fixed" else None
    write = r.number("accumulator", "write_pj", acc) if model == "fixed" else None
    return EnergyTable(
        node_nm=r.number("technology", "node_nm", tech),
        name=r.text("technology", "name", tech),
        add=r.curve("add", square=False), multiply=r.curve("multiply", square=True),
        register_pj_per_bit=r.number("register", "pj_per_bit", reg),
        register_source=r.text("register", "source", reg),
        register_scaling=r.text("register", "scaling", reg),
        accumulator_model=model, accumulator_read_pj=read, accumulator_write_pj=write,
        accumulator_source=r.text("accumulator", "source", acc), path=name)


def default_table() -> EnergyTable:
    """The default 45 nm table."""
    return load_table(None)
