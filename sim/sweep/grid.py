"""Sweep definitions: a TOML file (or the same table built from CLI flags) expanded to points.

Everything is checked here, before any point runs: TOML syntax, unknown keys, value types, every
configuration (``ArrayConfig`` validation), model and quantizer names, and that the checkpoints
asked for exist. A sweep file::

    models = ["cnn", "mlp"]                 # required; "gemm" is a random GEMM workload; a
                                            # path runs that model file (ONNX, PyTorch, ...)
    quantizers = ["a2q", "a2q+"]            # default: every quantizer with checkpoints
    checkpoint_p = "match"                  # "match": the checkpoint trained for the array's P
                                            # (a model retrained per P); an int or a list of ints:
                                            # those checkpoints on every array (one checkpoint on
                                            # narrower arrays); "all": every checkpoint
    adversarial = true                      # also count overflow on adversarial inputs
    synth = "generic"                       # optional synthesis target for the area columns
    energy = true                           # energy of one inference (45 nm table), or a path:
                                            # your technology's table (sim.energy.load_table)
    checkpoints = "path/to/dir"             # optional checkpoint folder (default: the shipped ones)
    data = "fashion-mnist"                  # data of the models (default: each model's own);
                                            # or a table: path, labels, limit, scale, mean, std,
                                            # layout (accel.data.load_data)

    [array]                                 # fixed ArrayConfig fields
    rows = 4
    cols = 4

    [grid]                                  # ArrayConfig fields to cross (lists)
    pe_acc_bits = [16, 17, 18, 20]
    overflow = ["wrap", "saturate"]

    [[points]]                              # extra configurations (fields over [array])
    pe_acc_bits = 32

    [gemm]                                  # parameters of the "gemm" workload
    t = 64
    k = 128
    o = 32
    dist = "extreme"                        # "uniform" or "extreme"
    seed = 0
"""

from __future__ import annotations

import dataclasses
import itertools
import tomllib
from pathlib import Path
from typing import Any

from accel.config import ArrayConfig, ConfigError
from sim.sweep.catalog import GEMM_MODEL, Catalog, Checkpoint, gemm_options
from sim.sweep.errors import SweepError, check_table
from sim.sweep.spec import DEFAULT_ENERGY, PointSpec, digest

__all__ = ["load_sweep", "expand", "SWEEP_KEYS"]

#: Top-level keys of a sweep table and what each must be.
SWEEP_KEYS = {
    "models": "a list of model names",
    "quantizers": "a list of quantizer names",
    "checkpoint_p": '"match", "all", an integer or a list of integers',
    "adversarial": "true or false",
    "synth": "a synthesis target name",
    "energy": "true, false or an energy table path (TOML)",
    "checkpoints": "a checkpoint folder path",
    "split": 'a dataset split ("test")',
    "data": "a built-in dataset name or file path, or a table of path, labels, limit, scale, "
            "mean, std, layout",
    "array": "a table of ArrayConfig fields",
    "grid": "a table of ArrayConfig fields, each a list of values",
    "points": "an array of tables of ArrayConfig fields",
    "gemm": "a table of gemm workload parameters (t, k, o, dist, seed, bias)",
}
SPLITS = ("test",)
_CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(ArrayConfig))
#: Keys of a ``[data]`` table and their types.
DATA_KEYS: dict[str, tuple[type, ...]] = {"path": (str,), "labels": (str,), "limit": (int,),
                                          "scale": (int, float), "mean": (int, float, list),
                                          "std": (int, float, list), "layout": (str,)}


def load_sweep(path: str | Path) -> dict[str, Any]:
    """Read a sweep TOML file; a syntax error names the file, line and column."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SweepError(f"cannot read sweep file {path}: {e.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SweepError(f"sweep file {path} is not valid TOML: {e}") from None


def expand(table: dict[str, Any], catalog: Catalog | None = None, source: str = "sweep",
           notes: list[str] | None = None) -> list[PointSpec]:
    """Check a sweep table and expand it to its points (configs x models x quantizers x checkpoints).

    Parameters
    ----------
    table : dict
        As read by :func:`load_sweep` (or built from CLI flags).
    catalog : Catalog, optional
        Where checkpoints are looked up (default: ``table["checkpoints"]`` or the shipped ones).
    source : str
        Name of the file or "flags", used in error messages.
    notes : list of str, optional
        Receives one line per (model, quantizer, N, M) whose ``checkpoint_p = "match"`` points
        were skipped because no checkpoint was trained for those Ps (e.g. ``accel sweep --model
        cnn`` over a P grid: each quantizer runs where it has a checkpoint). Without a list, or
        when nothing is left to run, a missing checkpoint is an error.

    Raises
    ------
    SweepError
        On any malformed entry, unknown name or missing checkpoint, naming it and what is valid.
    """
    unknown = sorted(set(table) - set(SWEEP_KEYS))
    if unknown:
        raise SweepError(f"{source}: unknown key(s) {', '.join(unknown)}; valid keys are "
                         f"{', '.join(SWEEP_KEYS)}")
    models = _str_list(table, "models", source, required=True)
    quantizers = _str_list(table, "quantizers", source) if "quantizers" in table else None
    adversarial = table.get("adversarial", True)
    if not isinstance(adversarial, bool):
        raise SweepError(f"{source}: adversarial must be {SWEEP_KEYS['adversarial']}, not {adversarial!r}")
    synth = table.get("synth")
    if synth is not None:
        synth = _check_synth(synth, source)
    energy = _check_energy(table.get("energy", False), source)
    split = table.get("split", "test")
    if split not in SPLITS:
        raise SweepError(f"{source}: split must be one of {', '.join(map(repr, SPLITS))}, not {split!r}")
    selector = _checkpoint_selector(table.get("checkpoint_p", "match"), source)
    if catalog is None:
        folder = table.get("checkpoints")
        if folder is not None and not Path(str(folder)).is_dir():
            raise SweepError(f"{source}: checkpoint folder {folder} does not exist")
        catalog = Catalog(folder)
    configs = _configs(table, source)
    gemm = gemm_options(table.get("gemm", {}), source) if GEMM_MODEL in models else None
    if "gemm" in table and GEMM_MODEL not in models:
        raise SweepError(f"{source}: a [gemm] table is given but models does not list {GEMM_MODEL!r}")

    data = _data_options(table.get("data"), source)
    points: list[PointSpec] = []
    missing: list[tuple[str, str, int, str]] = []
    skipped: dict[tuple[str, str, int, int, str], list[int]] = {}
    for model in models:
        if _is_file(model):
            ck = _model_file(model, catalog, data, source)
            options = {"float_accuracy": ck.float_accuracy, "format": ck.format, **data}
            points += [PointSpec(config=config, model=ck.model, quantizer=ck.quantizer,
                                 target_p=ck.target_p, checkpoint=str(ck.path),
                                 checkpoint_hash=_workload_hash(ck, data), options=options,
                                 adversarial=adversarial, synth=synth, energy=energy,
                                 split=split)
                       for config in configs]
            continue
        catalog.check_model(model, source)
        for config in configs:
            common = dict(config=config, model=model, adversarial=adversarial, synth=synth,
                          energy=energy,
                          split=split)
            if model == GEMM_MODEL:
                if quantizers not in (None, ["none"]):
                    raise SweepError(f"{source}: the {GEMM_MODEL!r} workload has random integer "
                                     "weights and no quantizer; use quantizers = [\"none\"] or leave "
                                     "it out")
                points.append(PointSpec(quantizer="none", checkpoint_hash=catalog.gemm_hash(gemm),
                                        options=gemm, **common))
                continue
            reference = {"float_accuracy": catalog.float_accuracy(model), **data}
            for quantizer in quantizers or catalog.quantizers(model):
                before = len(missing)
                for ck in catalog.select(model, quantizer, config, selector, source,
                                         None if notes is None else missing):
                    points.append(PointSpec(quantizer=quantizer, target_p=ck.target_p,
                                            checkpoint=str(ck.path),
                                            checkpoint_hash=_workload_hash(ck, data),
                                            options={**reference, "format": ck.format}, **common))
                for _, _, p, have in missing[before:]:
                    key = (model, quantizer, config.act_bits, config.weight_bits, have)
                    skipped.setdefault(key, []).append(p)
    if not points and skipped:
        (model, quantizer, n, m, have), ps = next(iter(skipped.items()))
        raise SweepError(f"{source}: " + catalog.missing_text(
            model, quantizer, n, m, ", ".join(map(str, sorted(set(ps)))), have))
    if not points:
        raise SweepError(f"{source}: the sweep has no points")
    for (model, quantizer, n, m, have), ps in skipped.items():
        notes.append(f"{model} {quantizer} (N = {n}, M = {m}): no checkpoint trained for P = "
                     f"{', '.join(map(str, sorted(set(ps))))} (it has {have}); those points are "
                     "skipped (checkpoint_p = \"match\"; \"all\" runs every checkpoint on every array)")
    seen: set[tuple[Any, ...]] = set()
    unique = []
    for p in points:                      # a grid may name a configuration twice
        if p.key not in seen:
            seen.add(p.key)
            unique.append(p)
    return unique


def _workload_hash(ck: Checkpoint, data: dict[str, Any]) -> str:
    """The point's ``checkpoint_hash``: the file's, or with the data named, of both (the same
    model on other data is another workload in the store)."""
    return digest({"checkpoint": ck.hash, **data}) if data else ck.hash


def _is_file(model: str) -> bool:
    """Whether a ``models`` entry names a model file rather than a catalog model."""
    from accel.frontends import SUFFIXES

    return "/" in model or Path(model).suffix.lower() in SUFFIXES or Path(model).is_file()


def _model_file(model: str, catalog: Catalog, data: dict[str, Any], source: str) -> Checkpoint:
    ck = catalog.add_file(model)
    if ck.format is not None and ck.dataset is None and "data" not in data:
        raise SweepError(f"{source}: model {model} does not record its dataset; give data "
                         "(a built-in dataset name or a file: data = \"PATH\" in the sweep "
                         "file, --data PATH on the command line)")
    return ck


def _data_options(v: Any, source: str) -> dict[str, Any]:
    """The point options of the ``data`` key (``data``, ``labels``, ``limit``, preprocessing),
    checked: a built-in name or an existing file, values of the right types."""
    from accel.data import BUILTIN

    if v is None:
        return {}
    d = check_table({"path": v} if isinstance(v, str) else v, DATA_KEYS, f"{source} data",
                    SWEEP_KEYS["data"], "data key")
    for key, val in d.items():
        if not isinstance(val, DATA_KEYS[key]) or isinstance(val, bool):
            raise SweepError(f"{source}: data {key} has the wrong type ({val!r})")
    if "path" not in d and set(d) - {"limit"}:
        raise SweepError(f"{source}: data names no path; {', '.join(sorted(set(d) - {'limit'}))} "
                         "need one (a built-in dataset or a file)")
    if "path" in d and d["path"] not in BUILTIN and not Path(d["path"]).exists():
        raise SweepError(f"{source}: data {d['path']} is neither a built-in dataset "
                         f"({', '.join(BUILTIN)}) nor an existing file")
    if "labels" in d and not Path(d["labels"]).is_file():
        raise SweepError(f"{source}: data labels {d['labels']} does not exist")
    if "limit" in d and d["limit"] < 1:
        raise SweepError(f"{source}: data limit must be at least 1, not {d['limit']}")
    return {("data" if k == "path" else k): val for k, val in d.items()}


def _str_list(table: dict[str, Any], key: str, source: str, required: bool = False) -> list[str]:
    if key not in table:
        if required:
            raise SweepError(f"{source}: {key} is required ({SWEEP_KEYS[key]})")
        return []
    v = table[key]
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v or not all(isinstance(s, str) for s in v):
        raise SweepError(f"{source}: {key} must be {SWEEP_KEYS[key]}, not {v!r}")
    return v


def _check_energy(v: Any, source: str) -> str | None:
    """``PointSpec.energy`` of the ``energy`` key; a table path is read now (errors before work)."""
    from sim.energy import load_table

    if v is False:
        return None
    if v is True:
        return DEFAULT_ENERGY
    if not isinstance(v, str):
        raise SweepError(f"{source}: energy must be {SWEEP_KEYS['energy']}, not {v!r}")
    try:
        load_table(v)
    except FileNotFoundError:
        raise SweepError(f"{source}: energy table {v} does not exist") from None
    except ValueError as e:
        raise SweepError(f"{source}: {e}") from None
    return v


def _check_synth(target: Any, source: str) -> str:
    from sim.sweep.evaluate import synth_targets

    if target not in synth_targets():
        raise SweepError(f"{source}: synth must be one of {', '.join(map(repr, synth_targets()))}, "
                         f"not {target!r}")
    return target


def _checkpoint_selector(v: Any, source: str) -> str | list[int]:
    if v in ("match", "all"):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        v = [v]
    if isinstance(v, list) and v and all(isinstance(i, int) and not isinstance(i, bool) and i > 0
                                         for i in v):
        return v
    raise SweepError(f"{source}: checkpoint_p must be {SWEEP_KEYS['checkpoint_p']}, not {v!r}")


def _config_table(d: Any, where: str) -> dict[str, Any]:
    return check_table(d, _CONFIG_FIELDS, where, SWEEP_KEYS["array"], "configuration field")


def _configs(table: dict[str, Any], source: str) -> list[ArrayConfig]:
    base = _config_table(table.get("array", {}), f"{source} [array]")
    grid = _config_table(table.get("grid", {}), f"{source} [grid]")
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise SweepError(f"{source} [grid]: {name} must be a non-empty list of values, not "
                             f"{values!r}")
    extra = table.get("points", [])
    if not isinstance(extra, list):
        raise SweepError(f"{source}: points must be {SWEEP_KEYS['points']}, not {extra!r}")
    variants: list[tuple[str, dict[str, Any]]] = []
    if grid or not extra:
        names = list(grid)
        for combo in itertools.product(*(grid[n] for n in names)):
            variants.append((f"{source} [grid] " + ", ".join(f"{n} = {v!r}" for n, v in
                                                             zip(names, combo)),
                             dict(zip(names, combo))))
    for i, p in enumerate(extra):
        where = f"{source} [[points]] #{i + 1}"
        variants.append((where, _config_table(p, where)))
    configs = []
    for where, fields in variants:
        try:
            configs.append(ArrayConfig.from_dict({**base, **fields}))
        except (ConfigError, TypeError) as e:
            raise SweepError(f"{where}: {e}") from None
    return configs
