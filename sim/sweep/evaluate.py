"""The evaluation of one design point: :func:`evaluate_point` (a :class:`PointSpec` -> a store row).

This is the only function a sweep's workers run. It calls the other parts' public APIs:

* values and overflow events: :func:`accel.golden.gemm` (``gemm`` workload) or the executor's
  :func:`accel.executor.simulate` with the golden back end (a checkpoint or model file, read by
  its front end, on its data: :func:`accel.data.model_data`, the model's own dataset's test split
  unless the sweep names data; the same calls ``accel simulate`` makes);
* adversarial inputs per layer: :func:`sim.sweep.adversarial.adversarial_codes` through the
  golden model at the point's P, Q, R and overflow mode;
* cycles and utilisation of one inference: :func:`sim.cycles.gemm_cycles` per GEMM (closed form
  from the canonical schedule and the RTL's timing numbers);
* area: :func:`rtl_gen.synth.flow.synthesize` of the whole array (cached on disk by the synth flow);
* energy of one inference: :func:`sim.energy.energy_of_gemms` of the same GEMMs (exact action
  counts x a per-action energy table).

``sim``, ``rtl_gen`` and ``models`` are imported inside the functions that need them, as the CLI
verbs do: ``accel`` itself never depends on them at import time.
"""

from __future__ import annotations

import datetime
import functools
import json
import platform
import socket
import sys
import time
from typing import Any

import numpy as np

from accel.config import ArrayConfig
from accel.arith import GemmResult
from accel.golden import gemm
from sim.sweep.adversarial import adversarial_codes
from sim.sweep.catalog import GEMM_MODEL
from sim.sweep.spec import DEFAULT_ENERGY, KEY_FIELDS, PointSpec

__all__ = ["evaluate_point", "infeasible", "synth_targets", "SYNTH_BLOCK"]

#: The block synthesised for a point's area (the whole array, top module).
SYNTH_BLOCK = "array"


def synth_targets() -> tuple[str, ...]:
    """Names of the synthesis targets (:data:`rtl_gen.synth.targets.TARGETS`)."""
    from rtl_gen.synth.targets import TARGETS

    return tuple(TARGETS)


def evaluate_point(spec: PointSpec) -> dict[str, Any]:
    """Evaluate one design point and return its store row (see :data:`sim.sweep.store.COLUMNS`).

    Accuracy is a share in 0..1: of test samples classified right (models), or of GEMM outputs
    equal to the exact int64 result (``gemm`` workload, whose float accuracy is 1). A point the
    array cannot run (:func:`infeasible`) is a row too: no accuracy, the reason in ``note``. Event counts
    are overflow events (SPEC section 2) summed over the layers; ``layers`` lists them per layer.
    ``cycles`` are those of one inference (batch 1; ``gemm``: the whole GEMM as one job).
    """
    start = time.perf_counter()
    config = spec.config
    row: dict[str, Any] = dict(zip(KEY_FIELDS, spec.key))
    row.update(rows=config.rows, cols=config.cols, act_signed=config.act_signed,
               pe_acc_bits=config.pe_acc_bits, out_acc_bits=config.out_bits,
               overflow=config.overflow, acc_depth=config.acc_depth,
               overq=config.to_dict()["overq"], config=config.to_dict(),
               checkpoint=spec.checkpoint)
    if spec.model == GEMM_MODEL:
        row.update(_evaluate_gemm(spec))
    else:
        row.update(_evaluate_model(spec))
    layers = row["layers"]
    for col in ("pe_events", "acc_events", "adv_pe_events", "adv_acc_events"):
        vals = [lay[col] for lay in layers if lay.get(col) is not None]
        row[col] = sum(vals) if layers and len(vals) == len(layers) else None
    gemms = row.pop("gemms", None)          # of one inference, per layer; None: infeasible
    if gemms is not None:
        row.update(_cycles([g for shapes in gemms.values() for g in shapes], config))
        if spec.energy is not None:
            row.update(_energy(gemms, config, spec.energy, row["extra"]))
    versions = _versions()
    if spec.synth is not None:
        row.update(_synthesize(config, spec.synth, versions))
    row["versions"] = versions
    row["seconds"] = time.perf_counter() - start
    row["host"] = socket.gethostname()
    row["finished_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return row


# --- workloads ------------------------------------------------------------------------------------

def _evaluate_gemm(spec: PointSpec) -> dict[str, Any]:
    from accel.operands import random_operands

    cfg, opt = spec.config, spec.options
    x, w, b = random_operands(cfg, opt["t"], opt["k"], opt["o"], opt["dist"], opt["seed"], opt["bias"])
    res = gemm(x, w, cfg, b)
    exact = x @ w + (b if b is not None else 0)
    layer = _layer_events("gemm", res)
    if spec.adversarial:
        layer.update(_adversarial_events([(w, b)], cfg.lane_range, cfg))
    return {"accuracy": float(np.mean(res.y == exact)), "float_accuracy": 1.0,
            "samples": int(res.y.size), "affected_share": layer["affected"] / max(1, res.y.size),
            "layers": [layer], "gemms": {"gemm": [(opt["t"], opt["k"], opt["o"])]},
            "extra": {"workload": opt}}


def _evaluate_model(spec: PointSpec) -> dict[str, Any]:
    from accel.backends import GoldenBackend
    from accel.executor import simulate
    from accel.frontends import load_model

    cfg, opt = spec.config, spec.options
    graph = load_model(spec.checkpoint, opt.get("format") or "graph").graph
    meta = graph.meta
    float_acc = spec.options.get("float_accuracy", meta.get("float_accuracy"))
    reason = infeasible(graph.layers, cfg)
    if reason is not None:          # the array refuses this checkpoint: a result, not an error
        return {"accuracy": None, "float_accuracy": None if float_acc is None else float(float_acc),
                "layers": [],
                "note": reason, "extra": {"recorded_accuracy": meta.get("accuracy")}}
    x, y = _data(meta, spec.split, opt)
    res = simulate(graph, [(x, y)], GoldenBackend(cfg))
    samples = res.samples
    layers = []
    for stats, node in zip(res.layers, graph.array_nodes):
        lay = node.layer
        entry = {"name": stats.name, "kind": lay.kind, "outputs": stats.outputs,
                 "pe_events": stats.pe_events, "acc_events": stats.acc_events,
                 "affected": stats.affected_outputs}
        if spec.adversarial:           # over the codes the layer's input edge can carry
            t = graph.types[node.inputs[0]]
            entry.update(_adversarial_events(_gemm_operands(lay), (t.lo, t.hi), cfg))
        layers.append(entry)
    outputs = sum(s.outputs for s in res.layers)
    return {"accuracy": res.accuracy, "float_accuracy": None if float_acc is None else float(float_acc),
            "samples": samples,
            "affected_share": sum(s.affected_outputs for s in res.layers) / max(1, outputs),
            "layers": layers, "gemms": res.inference_gemms(),
            "extra": {"recorded_accuracy": meta.get("accuracy")}}


#: Point options that say which data a model runs on (``sim.sweep.grid``'s ``data`` key).
DATA_OPTIONS = ("data", "labels", "limit", "scale", "mean", "std", "layout")


def _data(meta: dict[str, Any], split: str, options: dict[str, Any]
          ) -> tuple[np.ndarray, np.ndarray]:
    """The inputs and labels a model's points run on (:func:`accel.data.model_data` of the
    model's meta and the point's data options), cached per worker process."""
    mine = {"dataset": meta.get("dataset"), "input": meta.get("input")}
    return _cached_data(json.dumps(mine, sort_keys=True), split,
                        json.dumps({k: v for k, v in options.items() if k in DATA_OPTIONS},
                                   sort_keys=True))


@functools.lru_cache(maxsize=4)
def _cached_data(meta: str, split: str, options: str) -> tuple[np.ndarray, np.ndarray]:
    from accel.data import model_data

    opt = json.loads(options)
    limit = opt.pop("limit", None)
    ds = model_data(json.loads(meta), opt.pop("data", None), split=split,
                    labels=opt.pop("labels", None), **opt)
    if ds.y is None:
        raise ValueError(f"data {ds.name} has no labels; a sweep measures accuracy")
    n = len(ds) if limit is None else min(limit, len(ds))
    return ds.x[:n], ds.y[:n]


def infeasible(layers: list[Any], config: ArrayConfig) -> str | None:
    """Why the array cannot run these integer layers at all, or None.

    The array rejects operands rather than wrapping them (SPEC section 2): input codes wider than
    its lanes, weights wider than M, or a bias (zero-point correction included) outside Q bits.
    """
    llo, lhi = config.lane_range
    qlo, qhi = config.out_range
    for lay in layers:
        lo, hi = lay.input_range
        if lo < llo or hi > lhi:
            return (f"layer {lay.name}: input codes [{lo}, {hi}] do not fit the array's lanes "
                    f"[{llo}, {lhi}]")
        if lay.weight_bits > config.weight_bits:
            return f"layer {lay.name}: {lay.weight_bits}-bit weights exceed M = {config.weight_bits}"
        if lay.bias is not None and lay.bias.size:
            bad = np.flatnonzero((lay.bias < qlo) | (lay.bias > qhi))
            if bad.size:
                c = int(bad[0])
                return (f"layer {lay.name}: bias {int(lay.bias[c])} of channel {c} does not fit "
                        f"Q = {config.out_bits} bits [{qlo}, {qhi}]")
    return None


def _gemm_operands(layer: Any) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """``(w [K, O_g], bias [O_g])`` of each group of an integer layer (SPEC section 1 order)."""
    o = layer.out_channels
    wmat = layer.weight.reshape(o, -1)
    g = layer.groups
    og = o // g
    bias = layer.bias
    return [(wmat[i * og:(i + 1) * og].T, None if bias is None else bias[i * og:(i + 1) * og])
            for i in range(g)]


# --- measurements ---------------------------------------------------------------------------------

def _layer_events(name: str, res: GemmResult) -> dict[str, Any]:
    return {"name": name, "outputs": int(res.y.size), "pe_events": int(res.pe_events),
            "acc_events": int(res.acc_events),
            "affected": int((res.pe_overflow | res.acc_overflow).sum())}


def _adversarial_events(gemms: list[tuple[np.ndarray, np.ndarray | None]], x_range: tuple[int, int],
                        config: ArrayConfig) -> dict[str, int]:
    """Overflow events of every GEMM of a layer on its adversarial inputs."""
    pe = acc = 0
    for w, b in gemms:
        res = gemm(adversarial_codes(w, x_range), w, config, b)
        pe += res.pe_events
        acc += res.acc_events
    return {"adv_pe_events": int(pe), "adv_acc_events": int(acc)}


def _cycles(shapes: list[tuple[int, int, int]], config: ArrayConfig) -> dict[str, Any]:
    """Cycles, MACs and utilisation of running the GEMMs ``(T, K, O)`` one job after another."""
    from sim.cycles import gemm_cycles

    jobs = [gemm_cycles(t, k, o, config) for t, k, o in shapes]
    cycles = sum(j.cycles for j in jobs)
    macs = sum(j.macs for j in jobs)
    return {"cycles": cycles, "macs": macs,
            "utilisation": macs / (cycles * config.rows * config.cols) if cycles else None}


def _energy(gemms: dict[str, list[tuple[int, int, int]]], config: ArrayConfig, table: str,
            extra: dict[str, Any]) -> dict[str, Any]:
    """Dynamic energy of one inference (:func:`sim.energy.energy_of_gemms`) with ``table`` (a
    TOML path, or ``"default"``: the 45 nm table); the split by component goes into ``extra``."""
    from sim.energy import energy_of_gemms, load_table

    rep = energy_of_gemms(gemms, config, load_table(None if table == DEFAULT_ENERGY else table))
    extra["energy_pj"] = rep.energy_pj
    extra["energy_table"] = {"name": rep.table.name, "node_nm": rep.table.node_nm}
    return {"energy_pj": rep.total_pj, "pj_per_mac": rep.pj_per_mac}


def _synthesize(config: ArrayConfig, target: str, versions: dict[str, str]) -> dict[str, Any]:
    from rtl_gen.synth.flow import synthesize

    rep = synthesize(config, SYNTH_BLOCK, target)
    versions.update({f"synth:{k}": v for k, v in rep.tools.items()})
    return {"synth_target": target, "area": float(rep.area), "area_unit": rep.area_unit,
            "luts": rep.resources.get("luts"), "ffs": rep.resources.get("ffs")}


def _versions() -> dict[str, str]:
    import accel

    out = {"accel-hw": accel.__version__, "python": platform.python_version(),
           "numpy": np.__version__}
    if "torch" in sys.modules:
        out["torch"] = sys.modules["torch"].__version__
    return out
