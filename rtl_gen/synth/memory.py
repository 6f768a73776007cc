"""The array with its accumulator memory as an SRAM macro, next to the flip-flop version.

Both sides are sky130 cell areas (:mod:`rtl_gen.synth.sky130`): the flip-flop version maps the
accumulator memory to flip-flops and multiplexers; the SRAM version keeps the memory as a macro
(``memory="sram"`` of :func:`rtl_gen.synth.flow.synthesize`) and adds CACTI's area for it
(:mod:`rtl_gen.synth.cacti`). CACTI has no 130 nm model, so the SRAM area is taken at a CACTI node
(90 nm by default, the nearest) and scaled to 130 nm by :func:`rtl_gen.synth.cacti.scale_area`
(area x (130 / node)²); the report states the rule with the number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accel.config import ArrayConfig
from rtl_gen.synth.cacti import SramReport, scale_area, sram
from rtl_gen.synth.flow import accumulator_geometry, synthesize
from rtl_gen.synth.report import SynthReport

__all__ = ["SKY130_NODE_NM", "DEFAULT_SRAM_NODE_NM", "MemoryComparison", "accmem_as_sram"]

#: sky130's feature size in nm.
SKY130_NODE_NM = 130
#: Default CACTI node for the comparison: the modelled node nearest to 130 nm.
DEFAULT_SRAM_NODE_NM = 90


@dataclass(frozen=True)
class MemoryComparison:
    """One block (``accmem`` or ``array``) with the accumulator memory in flip-flops and as SRAM.

    Attributes
    ----------
    ff : SynthReport
        sky130, every memory bit in flip-flops.
    logic : SynthReport
        sky130, the accumulator memory left out as a macro: the logic around it.
    sram : SramReport
        CACTI's model of the memory at ``sram.node_nm``.
    """

    ff: SynthReport
    logic: SynthReport
    sram: SramReport

    @property
    def scaling_rule(self) -> str:
        """How the SRAM area was brought to sky130's node."""
        return (f"CACTI {self.sram.node_nm} nm area x ({SKY130_NODE_NM}/{self.sram.node_nm})² "
                f"(ideal area scaling)")

    @property
    def sram_um2_at_130(self) -> float | None:
        """The SRAM area scaled to 130 nm in µm² (None where CACTI has no model)."""
        if not self.sram.available:
            return None
        return scale_area(self.sram.area_um2, self.sram.node_nm, SKY130_NODE_NM)

    @property
    def sram_version_um2(self) -> float | None:
        """sky130 logic + scaled SRAM, in µm² (None where CACTI has no model)."""
        scaled = self.sram_um2_at_130
        return None if scaled is None else self.logic.area_um2 + scaled

    @property
    def memory_ff_um2(self) -> float:
        """The flip-flop memory alone: flip-flop version minus the logic around the memory."""
        return self.ff.area_um2 - self.logic.area_um2

    def to_dict(self) -> dict[str, Any]:
        total = self.sram_version_um2
        return {"block": self.ff.block, "ff_version_um2": self.ff.area_um2,
                "logic_um2": self.logic.area_um2, "memory_ff_um2": self.memory_ff_um2,
                "sram": self.sram.to_dict(), "sram_um2_at_130nm": self.sram_um2_at_130,
                "sram_version_um2": total, "scaling_rule": self.scaling_rule,
                "ratio": None if total is None else total / self.ff.area_um2}

    def summary(self) -> list[str]:
        """Human-readable lines."""
        g = next(iter(self.logic.sram_macros.values()))
        lines = [f"accumulator memory {g['words']} x {g['bits']} bit, {self.ff.block}:",
                 f"  flip-flops (sky130)        {self.ff.area_um2:>12,.1f} µm²  "
                 f"(memory {self.memory_ff_um2:,.1f} µm²)",
                 f"  logic without the memory   {self.logic.area_um2:>12,.1f} µm²",
                 f"  {self.sram.summary()}"]
        if self.sram.available:
            lines.append(f"  SRAM at 130 nm             {self.sram_um2_at_130:>12,.1f} µm²  "
                         f"({self.scaling_rule})")
            lines.append(f"  with SRAM                  {self.sram_version_um2:>12,.1f} µm²  "
                         f"(x{self.sram_version_um2 / self.ff.area_um2:.3f} of flip-flops)")
        return lines


def accmem_as_sram(config: ArrayConfig, block: str = "array",
                   node_nm: int = DEFAULT_SRAM_NODE_NM, **options: Any) -> MemoryComparison:
    """Synthesise ``block`` on sky130 with the accumulator memory in flip-flops and as a macro,
    and model the macro with CACTI at ``node_nm``.

    Parameters
    ----------
    config : ArrayConfig
        The configuration.
    block : {"accmem", "array"}
        The accumulator memory block or the whole array.
    node_nm : int
        CACTI node (:data:`rtl_gen.synth.cacti.NODES_NM`).
    **options
        Synthesis options (:func:`rtl_gen.synth.flow.synthesize`: ``cache``, ``use_cache``,
        ``timeout``, ``progress``); ``cache``, ``use_cache`` and ``progress`` also go to CACTI.
    """
    if block not in ("accmem", "array"):
        raise ValueError(f"the SRAM comparison needs a block with the accumulator memory "
                         f"(accmem or array), not {block!r}")
    ff = synthesize(config, block, "sky130", **options)
    logic = synthesize(config, block, "sky130", memory="sram", **options)
    geometry = accumulator_geometry(config)
    cacti_opts = {k: options[k] for k in ("cache", "use_cache", "progress") if k in options}
    return MemoryComparison(ff, logic, sram(geometry["words"], geometry["bits"], node_nm,
                                            **cacti_opts))
