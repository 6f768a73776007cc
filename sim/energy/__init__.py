"""Energy per GEMM job, per layer and per inference: exact action counts x per-action energies.

* :mod:`sim.energy.actions`: what the array does for one GEMM (from :func:`sim.cycles.gemm_cycles`).
* :mod:`sim.energy.table`: per-action energies from a TOML table (default 45 nm, sourced entries).
* :mod:`sim.energy.model`: :func:`energy_of_gemms` -> :class:`EnergyReport`, split by component.
"""

from sim.energy.actions import ActionCounts, action_counts, fifo_bits, word_bits
from sim.energy.model import (ACC_MEMORIES, CATEGORIES, ActionEnergies, EnergyReport, GemmShape,
                              LayerEnergy, action_energies, energy_of, energy_of_gemms)
from sim.energy.table import EnergyTable, Lookup, default_table, load_table

__all__ = ["ACC_MEMORIES", "CATEGORIES", "ActionCounts", "ActionEnergies", "EnergyReport",
           "EnergyTable", "GemmShape", "LayerEnergy", "Lookup", "action_counts", "action_energies",
           "default_table", "energy_of", "energy_of_gemms", "fifo_bits", "load_table", "word_bits"]
