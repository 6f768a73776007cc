"""Energy of GEMM jobs on the array: action counts x per-action energies, split by component.

:func:`energy_of_gemms` is the entry point for anything that knows which GEMMs it runs (a model's
layers, a sweep point): give it the GEMM shapes per layer, the array configuration and a table,
get an :class:`EnergyReport` with the energy per layer and in total, in pJ, split into

* ``compute``: N x M multiplies and P-bit adds in the PEs;
* ``pe_registers``: PE pipeline registers and the input skew / output de-skew registers;
* ``accumulator``: Q-bit adds, accumulator-memory reads and writes;
* ``weight_load``: weight and bias bits written into the shadow tile and bias;
* ``fifo``: output FIFO writes and reads.

Every figure is at the table's node; the accumulator memory, when priced by CACTI, is modelled at
that same node (so nothing of another node is added). Dynamic energy only: no leakage, control or
clock tree outside the registers (:mod:`sim.energy.actions`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

from accel.config import ArrayConfig
from sim.energy.actions import ActionCounts, action_counts, word_bits
from sim.energy.table import EnergyTable, Lookup, default_table

__all__ = ["ACC_MEMORIES", "CATEGORIES", "GemmShape", "ActionEnergies", "LayerEnergy", "EnergyReport",
           "action_energies", "energy_of", "energy_of_gemms"]

#: Energy categories, in report order.
CATEGORIES = ("compute", "pe_registers", "accumulator", "weight_load", "fifo")

#: Layers named in :meth:`EnergyReport.summary` (the most expensive first).
LAYERS_SHOWN = 6

#: Accumulator memory pricing: from the table (``table``), CACTI SRAM, or flip-flop registers.
ACC_MEMORIES = ("table", "sram", "registers")


@dataclass(frozen=True)
class GemmShape:
    """One GEMM ``Y[T, O] = X[T, K] . W[K, O]``: T vectors, reduction K, O outputs."""

    t: int
    k: int
    o: int

    @classmethod
    def of(cls, shape: "GemmShape | tuple[int, int, int]") -> "GemmShape":
        """A shape from a GemmShape or a (t, k, o) tuple (ValueError otherwise)."""
        if isinstance(shape, GemmShape):
            return shape
        try:
            t, k, o = shape
        except (TypeError, ValueError):
            raise ValueError(f"a GEMM shape is GemmShape(t, k, o) or a (t, k, o) tuple, "
                             f"not {shape!r}") from None
        return cls(t, k, o)


@dataclass(frozen=True)
class ActionEnergies:
    """Energy of each action for one configuration on one table, in pJ, with provenance.

    Attributes
    ----------
    node_nm : float
        Node of every figure.
    mult, add_p, add_q : Lookup
        One N x M multiply, one P-bit add, one Q-bit add.
    register_bit : Lookup
        One register bit written or read.
    acc_read, acc_write : Lookup
        One accumulator-memory word (C * Q + 2C bits) read / written.
    """

    node_nm: float
    mult: Lookup
    add_p: Lookup
    add_q: Lookup
    register_bit: Lookup
    acc_read: Lookup
    acc_write: Lookup

    def to_dict(self) -> dict[str, Any]:
        return {"node_nm": self.node_nm} | {
            k: getattr(self, k).to_dict()
            for k in ("mult", "add_p", "add_q", "register_bit", "acc_read", "acc_write")}


def energy_of(counts: ActionCounts, e: ActionEnergies) -> dict[str, float]:
    """Energy in pJ per category (:data:`CATEGORIES`) of ``counts`` priced by ``e``."""
    bit = e.register_bit.pj
    return {
        "compute": counts.mults * e.mult.pj + counts.pe_adds * e.add_p.pj,
        "pe_registers": (counts.pe_reg_bits + counts.skew_reg_bits) * bit,
        "accumulator": (counts.acc_adds * e.add_q.pj + counts.acc_reads * e.acc_read.pj
                        + counts.acc_writes * e.acc_write.pj),
        "weight_load": (counts.weight_bits + counts.bias_bits) * bit,
        "fifo": (counts.fifo_write_bits + counts.fifo_read_bits) * bit,
    }


def action_energies(config: ArrayConfig, table: EnergyTable | None = None,
                    acc_memory: str = "table",
                    sram: Callable[[int, int, int], Any] | None = None) -> ActionEnergies:
    """Per-action energies of ``config`` from ``table`` (default: the 45 nm table).

    Parameters
    ----------
    acc_memory : {"table", "sram", "registers"}
        ``table`` follows the table's ``[accumulator] model``; ``sram`` prices accumulator words
        with CACTI at the table's node; ``registers`` as register bits (a flip-flop memory).
    sram : callable, optional
        ``sram(words, bits, node_nm)`` returning an object with ``available``, ``reason``,
        ``read_pj``, ``write_pj`` (default :func:`rtl_gen.synth.cacti.sram`).

    Raises
    ------
    ValueError
        For an unknown ``acc_memory``, or an SRAM that CACTI does not model (the message says to
        use ``registers``), or a table node CACTI has no model for.
    """
    table = default_table() if table is None else table
    if acc_memory not in ACC_MEMORIES:
        raise ValueError(f"acc_memory must be one of {', '.join(ACC_MEMORIES)}, not {acc_memory!r}")
    model = table.accumulator_model if acc_memory == "table" else (
        "cacti" if acc_memory == "sram" else "registers")
    bit = Lookup(table.register_pj_per_bit, f"register bit: {table.register_source}; "
                                            f"{table.register_scaling}")
    bits = word_bits(config)
    words = max(2, config.acc_depth)
    if model == "registers":
        rule = f"{bits} register bits x {bit.pj:g} pJ (accumulator memory in flip-flops)"
        read = write = Lookup(bits * bit.pj, rule)
    elif model == "fixed":
        read = Lookup(table.accumulator_read_pj, f"accumulator read: {table.accumulator_source}")
        write = Lookup(table.accumulator_write_pj,
                       f"accumulator write: {table.accumulator_source}")
    else:
        if sram is None:
            from rtl_gen.synth.cacti import sram
        node = int(table.node_nm)
        if node != table.node_nm:
            raise ValueError(f"CACTI models whole-nm nodes; the table's node is {table.node_nm} nm")
        rep = sram(words, bits, node)
        if not rep.available:
            raise ValueError(f"no SRAM model for the {words} x {bits}-bit accumulator memory: "
                             f"{rep.reason}; price it as flip-flops (acc_memory='registers', "
                             f"--acc-memory registers)")
        what = f"CACTI SRAM {words} x {bits} bit at {node} nm"
        read, write = Lookup(rep.read_pj, f"{what}, read"), Lookup(rep.write_pj, f"{what}, write")
    return ActionEnergies(
        node_nm=table.node_nm,
        mult=table.multiply_pj(config.act_bits, config.weight_bits),
        add_p=table.add_pj(config.pe_acc_bits), add_q=table.add_pj(config.out_bits),
        register_bit=bit, acc_read=read, acc_write=write)


@dataclass(frozen=True)
class LayerEnergy:
    """One layer's GEMM jobs: their summed actions and energy per category (pJ)."""

    name: str
    shapes: tuple[GemmShape, ...]
    counts: ActionCounts
    energy_pj: dict[str, float]

    @property
    def total_pj(self) -> float:
        return sum(self.energy_pj.values())

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "gemms": [[s.t, s.k, s.o] for s in self.shapes],
                "counts": self.counts.to_dict(), "energy_pj": self.energy_pj,
                "total_pj": self.total_pj}


@dataclass(frozen=True)
class EnergyReport:
    """Energy of a set of layers on one configuration and one table.

    Attributes
    ----------
    config : ArrayConfig
    table : EnergyTable
    energies : ActionEnergies
        The per-action energies used.
    layers : dict of str to LayerEnergy
        In the order given.
    """

    config: ArrayConfig
    table: EnergyTable
    energies: ActionEnergies
    layers: dict[str, LayerEnergy] = field(default_factory=dict)

    @property
    def counts(self) -> ActionCounts:
        """Actions of all layers."""
        total = ActionCounts.zero()
        for layer in self.layers.values():
            total = total + layer.counts
        return total

    @property
    def energy_pj(self) -> dict[str, float]:
        """Energy per category over all layers, in pJ."""
        return {c: sum(la.energy_pj[c] for la in self.layers.values()) for c in CATEGORIES}

    @property
    def total_pj(self) -> float:
        """Total energy in pJ."""
        return sum(self.energy_pj.values())

    @property
    def pj_per_mac(self) -> float | None:
        """Total energy per useful MAC in pJ (None without MACs)."""
        macs = self.counts.macs
        return self.total_pj / macs if macs else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"config": self.config.to_dict(), "config_hash": self.config.hash,
                "node_nm": self.table.node_nm, "table": self.table.to_dict(),
                "action_energies": self.energies.to_dict(),
                "layers": {n: la.to_dict() for n, la in self.layers.items()},
                "counts": self.counts.to_dict(), "energy_pj": self.energy_pj,
                "total_pj": self.total_pj, "pj_per_mac": self.pj_per_mac,
                "not_modelled": "leakage, control logic, clock tree outside registers"}

    def summary(self) -> str:
        """Human-readable lines."""
        e, total = self.energy_pj, self.total_pj
        lines = [f"{self.config.name} at {self.table.node_nm:g} nm ({self.table.name})",
                 f"  {self.counts.jobs} GEMM job(s), {self.counts.macs:,} MACs, "
                 f"{self.counts.cycles:,} cycles"]
        for c in CATEGORIES:
            share = 100 * e[c] / total if total else 0.0
            lines.append(f"  {c:<13} {e[c]:>14,.1f} pJ  {share:5.1f} %")
        lines.append(f"  {'total':<13} {total:>14,.1f} pJ"
                     + (f"  ({self.pj_per_mac:.4f} pJ per MAC)" if self.pj_per_mac else ""))
        if len(self.layers) > 1:
            top = sorted(self.layers.values(), key=lambda la: -la.total_pj)[:LAYERS_SHOWN]
            head = "per layer" if len(self.layers) <= LAYERS_SHOWN else f"top {LAYERS_SHOWN} layers"
            lines.append(f"  {head}: " + ", ".join(
                f"{la.name} {la.total_pj:,.0f} pJ ({100 * la.total_pj / total if total else 0:.0f} %)"
                for la in top))
        flagged = [n for n in ("mult", "add_p", "add_q")
                   if getattr(self.energies, n).extrapolated]
        if flagged:
            lines.append("  extrapolated beyond the table's points: "
                         + "; ".join(getattr(self.energies, n).rule for n in flagged))
        lines.append(f"  accumulator: {self.energies.acc_read.rule}")
        lines.append("  dynamic energy only: no leakage, control or clock tree outside registers")
        return "\n".join(lines)


def energy_of_gemms(shapes_by_layer: Mapping[str, Iterable[GemmShape | tuple[int, int, int]]],
                    config: ArrayConfig, table: EnergyTable | None = None, *,
                    acc_memory: str = "table",
                    energies: ActionEnergies | None = None) -> EnergyReport:
    """Energy of the GEMM jobs of each layer on ``config`` (each job run from reset).

    Parameters
    ----------
    shapes_by_layer : mapping of str to iterable of GemmShape or (t, k, o)
        The GEMMs of each layer (a grouped convolution has one per group).
    config : ArrayConfig
        The array.
    table : EnergyTable, optional
        Per-action energies (default: the 45 nm table, :func:`sim.energy.table.default_table`).
    acc_memory : {"table", "sram", "registers"}
        How accumulator-memory words are priced (:func:`action_energies`).
    energies : ActionEnergies, optional
        Precomputed per-action energies (skips the table lookup and CACTI).

    Returns
    -------
    EnergyReport
    """
    table = default_table() if table is None else table
    if energies is None:
        energies = action_energies(config, table, acc_memory)
    layers = {}
    for name, shapes in shapes_by_layer.items():
        gemms = tuple(GemmShape.of(s) for s in shapes)
        counts = ActionCounts.zero()
        for g in gemms:
            counts = counts + action_counts(g.t, g.k, g.o, config)
        layers[name] = LayerEnergy(name, gemms, counts, energy_of(counts, energies))
    return EnergyReport(config, table, energies, layers)
