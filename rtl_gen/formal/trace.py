"""Reading a solver trace (VCD) back in the project's terms.

SymbiYosys writes a counterexample as a VCD with one time step per clock edge. A harness names
what matters at its top level: ``prop_<name>`` (1 while property ``name`` holds),
``cover_<name>`` (1 on a step that reaches a cover point) and its probes (an activation, a weight,
a partial sum...). :func:`counterexample` reads those back: the first step where a property is
0, which properties failed there, and every probe's value (decimal, signed where the signal is)
on every step up to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rtl_gen.formal.harness import Harness

__all__ = ["read_vcd", "counterexample", "covers_reached", "format_steps"]


def read_vcd(path: str | Path) -> tuple[dict[str, list[str | None]], int]:
    """The top-level signals of a trace: name -> bit string per step, and the step count.

    Only signals of the outermost scope are kept (the harness' own, not the block's
    internals); a value is carried forward over steps where the VCD does not repeat it.
    """
    codes: dict[str, str] = {}
    changes: dict[str, dict[int, str]] = {}
    depth, step, last = 0, 0, 0
    with open(path) as f:
        tokens = iter(f.read().split())
    for tok in tokens:
        if tok == "$scope":
            depth += 1
        elif tok == "$upscope":
            depth -= 1
        elif tok == "$var":
            _kind, _width, code, name = (next(tokens) for _ in range(4))
            if depth == 1 and code not in codes:
                codes[code] = name
                changes[name] = {}
        elif tok.startswith("#"):
            step = int(tok[1:]) // 10
            last = max(last, step)
        elif tok[0] in "bB":
            code = next(tokens)
            if code in codes:
                changes[codes[code]][step] = tok[1:]
        elif tok[0] in "01xXzZ" and len(tok) > 1 and tok[1:] in codes:
            changes[codes[tok[1:]]][step] = tok[0]
    steps = last + 1
    values: dict[str, list[str | None]] = {}
    for name, ch in changes.items():
        row, cur = [], None
        for s in range(steps):
            cur = ch.get(s, cur)
            row.append(cur)
        values[name] = row
    return values, steps


def _decimal(bits: str | None, signed: bool) -> int | None:
    if bits is None or any(b not in "01" for b in bits):
        return None
    v = int(bits, 2)
    if signed and bits[0] == "1":
        v -= 1 << len(bits)
    return v


def counterexample(harness: Harness, vcd: str | Path) -> dict[str, Any]:
    """A failing trace in the project's terms.

    Returns
    -------
    dict
        ``step``: the first step where a property is 0 (or the last step when none is);
        ``failed``: the names of the properties that are 0 there; ``steps``: per step 0 ..
        ``step``, ``{probe label: value}`` in decimal (None where the trace has no value);
        ``text``: all of it as readable lines (:func:`format_steps`).
    """
    values, steps = read_vcd(vcd)
    step, failed = steps - 1, []
    for s in range(steps):
        failed = [p.name for p in harness.properties
                  if _decimal(values.get(f"prop_{p.name}", [None] * steps)[s], False) == 0]
        if failed:
            step = s
            break
    rows = [{probe.label: _decimal(values.get(probe.name, [None] * steps)[s], probe.signed)
             for probe in harness.probes} for s in range(step + 1)]
    docs = {p.name: p for p in harness.properties}
    lines = [f"{harness.name} ({harness.config.name}): counterexample, step {step} of a "
             f"{harness.mode} run"]
    for name in failed:
        prop = docs[name]
        lines.append(f"  FAILED {name}: {prop.doc}")
        shown = [f"{pr.label} = {rows[-1].get(pr.label)}" for pr in harness.probes
                 if pr.name in prop.shows]
        if shown:
            lines.append(f"    at step {step}: {', '.join(shown)}")
    lines += format_steps(rows)
    lines.append(f"  trace: {vcd}")
    return {"step": step, "failed": failed, "steps": rows, "text": "\n".join(lines)}


def format_steps(rows: list[dict[str, int | None]]) -> list[str]:
    """One line per step: ``step k: label = value, ...`` (the inputs and outputs of the step)."""
    return [f"  step {s}: " + ", ".join(f"{k} = {'?' if v is None else v}" for k, v in row.items())
            for s, row in enumerate(rows)]


def covers_reached(harness: Harness, vcds: list[Path]) -> set[str]:
    """Names of the cover points that are 1 on some step of some trace of a cover run."""
    reached: set[str] = set()
    for path in vcds:
        values, _ = read_vcd(path)
        for cover in harness.covers:
            if any(_decimal(v, False) == 1 for v in values.get(f"cover_{cover.name}", [])):
                reached.add(cover.name)
    return reached
