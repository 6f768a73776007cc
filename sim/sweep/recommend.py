"""Pick the configuration to build from a sweep's rows, and the accuracy-area Pareto front.

The rule: a point *qualifies* when its accuracy is within ``tolerance`` points of the float
model and it had **zero** overflow events, PE and accumulator, on the test set **and** on
adversarial inputs. Among qualifying points take the smallest P, then the smallest area, then
the smallest array (R x C), then the smallest Q. :func:`recommend` applies it per model;
:func:`choose_config` to the one configuration to build for *all* the models: one at which every
model has a qualifying point (with some quantizer and checkpoint).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sim.sweep.spec import NO_TARGET_P

__all__ = ["workload", "Recommendation", "Choice", "recommend", "choose_config", "passes", "pareto_front",
           "DEFAULT_TOLERANCE"]

#: Default accuracy tolerance, in percentage points below the float model.
DEFAULT_TOLERANCE = 1.0


def workload(row: dict[str, Any], short: bool = False) -> str:
    """What ran at a point, in words: ``quantizer a2q (checkpoint trained for P = 20)``, or
    ``random integer GEMM (no quantizer)`` for the ``gemm`` workload (no checkpoint)."""
    if row.get("target_p") == NO_TARGET_P and row.get("quantizer") == "none":
        return "random GEMM operands" if short else "random integer GEMM (no quantizer)"
    if short:
        return f"{row['quantizer']} (checkpoint P = {row['target_p']})"
    return f"quantizer {row['quantizer']} (checkpoint trained for P = {row['target_p']})"


def passes(row: dict[str, Any], tolerance: float) -> tuple[bool, str, str]:
    """Whether a row meets the rule: ``(ok, category, message)``; the category names the first
    failed condition (``infeasible``, ``accuracy``, ``overflow on the test set``, ``overflow on adversarial
    inputs``, ``not measured``) and the message gives the numbers."""
    if row.get("note"):
        return False, "infeasible", row["note"]
    acc, ref = row.get("accuracy"), row.get("float_accuracy")
    if acc is None or ref is None:
        return False, "not measured", "no accuracy or float accuracy recorded"
    if 100 * (ref - acc) > tolerance + 1e-9:
        return False, "accuracy", (f"accuracy {100 * acc:.2f} % is more than {tolerance:g} points "
                                   f"below the float model's {100 * ref:.2f} %")
    for cols, where in ((("pe_events", "acc_events"), "the test set"),
                        (("adv_pe_events", "adv_acc_events"), "adversarial inputs")):
        vals = [row.get(c) for c in cols]
        if any(v is None for v in vals):
            return False, "not measured", f"overflow events on {where} not measured"
        if any(vals):
            return False, f"overflow on {where}", (f"{vals[0]} PE and {vals[1]} accumulator "
                                                   f"overflow events on {where}")
    return True, "ok", "meets every condition"


def _order(row: dict[str, Any]) -> tuple[float, ...]:
    area = row.get("area")
    return (row["pe_acc_bits"], math.inf if area is None else area, row["rows"] * row["cols"],
            row["out_acc_bits"])


@dataclass
class Recommendation:
    """The recommended point of one model (``row`` None when no point qualifies)."""

    model: str
    tolerance: float
    row: dict[str, Any] | None
    considered: int
    qualifying: int
    float_accuracy: float | None
    rejected: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """A few lines for the terminal."""
        head = (f"{self.model}: {self.qualifying} of {self.considered} points within "
                f"{self.tolerance:g} percentage points of float"
                + (f" ({100 * self.float_accuracy:.2f} %)" if self.float_accuracy is not None else "")
                + " with zero overflow events (test set and adversarial)")
        if self.row is None:
            why = "; ".join(f"{n} x {r}" for r, n in sorted(self.rejected.items(), key=lambda kv: -kv[1]))
            return f"{head}\n  no configuration qualifies ({why})"
        r = self.row
        area = "" if r.get("area") is None else f", area {r['area']:,.0f} {r['area_unit']}"
        return (f"{head}\n  recommended: P = {r['pe_acc_bits']}, Q = {r['out_acc_bits']}, "
                f"{r['rows']}x{r['cols']} array, {r['overflow']}, {workload(r)}: accuracy "
                f"{100 * r['accuracy']:.2f} %{area}, {r['cycles']} cycles per "
                + ("GEMM" if r.get("target_p") == NO_TARGET_P and r["quantizer"] == "none"
                   else "inference"))

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "tolerance_points": self.tolerance, "row": self.row,
                "considered": self.considered, "qualifying": self.qualifying,
                "float_accuracy": self.float_accuracy, "rejected": self.rejected}


def recommend(rows: list[dict[str, Any]], tolerance: float = DEFAULT_TOLERANCE
              ) -> list[Recommendation]:
    """One :class:`Recommendation` per model in ``rows`` (store rows), models in name order."""
    if not (isinstance(tolerance, (int, float)) and tolerance >= 0):
        raise ValueError(f"tolerance must be a number of accuracy points >= 0, not {tolerance!r}")
    out = []
    for model in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == model]
        good, rejected = [], {}
        for r in mine:
            ok, category, _ = passes(r, tolerance)
            if ok:
                good.append(r)
            else:
                rejected[category] = rejected.get(category, 0) + 1
        refs = [r["float_accuracy"] for r in mine if r.get("float_accuracy") is not None]
        out.append(Recommendation(model=model, tolerance=tolerance,
                                  row=min(good, key=_order) if good else None,
                                  considered=len(mine), qualifying=len(good),
                                  float_accuracy=max(refs) if refs else None, rejected=rejected))
    return out


@dataclass
class Choice:
    """The configuration to build for every model (``row`` None when none serves them all).

    ``row`` is a representative row of the configuration (its fields and area); ``per_model``
    maps each model to its most accurate qualifying point at that configuration.
    """

    tolerance: float
    models: list[str]
    row: dict[str, Any] | None
    per_model: dict[str, dict[str, Any]]

    def summary(self) -> str:
        if self.row is None:
            return (f"build: no single configuration serves {', '.join(self.models)} within "
                    f"{self.tolerance:g} percentage points with zero overflow events")
        r = self.row
        area = "" if r.get("area") is None else f", area {r['area']:,.0f} {r['area_unit']}"
        uses = "; ".join(f"{m} with {workload(x, short=True)} {100 * x['accuracy']:.2f} %"
                         for m, x in self.per_model.items())
        return (f"build: P = {r['pe_acc_bits']}, Q = {r['out_acc_bits']}, {r['rows']}x{r['cols']} "
                f"array, {r['overflow']}{area} (config {r['config_hash']}): {uses}")

    def to_dict(self) -> dict[str, Any]:
        return {"tolerance_points": self.tolerance, "models": self.models, "row": self.row,
                "per_model": self.per_model}


def choose_config(rows: list[dict[str, Any]], tolerance: float = DEFAULT_TOLERANCE) -> Choice:
    """The configuration to build for all models in ``rows`` (the rule of the module docstring)."""
    models = sorted({r["model"] for r in rows})
    good: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if passes(r, tolerance)[0]:
            good.setdefault(r["config_hash"], []).append(r)
    serving = [g for g in good.values() if {r["model"] for r in g} == set(models)]
    if not serving:
        return Choice(tolerance, models, None, {})
    # area belongs to the configuration: take it from a row that has it
    reps = [next((r for r in g if r.get("area") is not None), g[0]) for g in serving]
    i = min(range(len(serving)), key=lambda i: _order(reps[i]))
    per_model = {m: max((r for r in serving[i] if r["model"] == m), key=lambda r: r["accuracy"])
                 for m in models}
    return Choice(tolerance, models, reps[i], per_model)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (area, accuracy) points no other point beats on both (lower area, higher
    accuracy), sorted by area; ties keep the first."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1], i))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front
