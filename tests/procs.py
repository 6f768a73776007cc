"""Processes of a running sweep, read from ``/proc`` (Linux): for the tests that stop sweeps."""

from pathlib import Path


def workers(pid: int) -> list[int]:
    """Pids of the multiprocessing worker processes whose parent is ``pid``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (d / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"spawn_main" in cmd:
            out.append(int(d.name))
    return out
