"""The blocks synthesised on their own: a PE, the accumulator memory and the whole array.

All three come from the same generator classes that build the array (:class:`rtl_gen.pe.PE`,
:class:`rtl_gen.accmem.AccMem`, :class:`rtl_gen.top.Top`), turned into Verilog top modules by
:func:`rtl_gen.export.to_verilog`, so a block's report measures exactly the logic the array holds.
"""

from __future__ import annotations

import ast
import hashlib
from importlib import metadata
from pathlib import Path

from accel.config import ArrayConfig, ConfigError

__all__ = ["BLOCKS", "OverQUnavailable", "module_name", "block_verilog", "check_overq_rtl",
           "generator_fingerprint"]

#: Blocks that can be synthesised, in report order.
BLOCKS = ("pe", "accmem", "array")


class OverQUnavailable(RuntimeError):
    """The RTL generator cannot build OverQ configurations (yet); the message says so."""


def _unavailable(error: ConfigError) -> OverQUnavailable:
    return OverQUnavailable(f"OverQ RTL is not available yet, so OverQ area cannot be synthesised "
                            f"(the generator says: {error})")


def _component(config: ArrayConfig, block: str):
    if block not in BLOCKS:
        raise ValueError(f"unknown block {block!r}; valid blocks are {', '.join(BLOCKS)}")
    check_overq_rtl(config)
    from rtl_gen.accmem import AccMem
    from rtl_gen.pe import PE
    from rtl_gen.top import Top
    return {"pe": PE, "accmem": AccMem, "array": Top}[block](config)


def check_overq_rtl(config: ArrayConfig) -> None:
    """Raise :class:`OverQUnavailable` if ``config`` has OverQ and the generator's own check
    (:func:`rtl_gen.interfaces.check_rtl_config`) refuses it; other configurations pass."""
    if config.overq is None:
        return
    from rtl_gen.interfaces import check_rtl_config
    try:
        check_rtl_config(config)
    except ConfigError as e:
        raise _unavailable(e) from None


def module_name(config: ArrayConfig, block: str) -> str:
    """Top module name of a block: ``config.name`` for the array, ``<config.name>_<block>`` else."""
    if block not in BLOCKS:
        raise ValueError(f"unknown block {block!r}; valid blocks are {', '.join(BLOCKS)}")
    return config.name if block == "array" else f"{config.name}_{block}"


def block_verilog(config: ArrayConfig, block: str) -> str:
    """Verilog text of ``block`` for ``config``, top module :func:`module_name`."""
    from rtl_gen.export import to_verilog
    return to_verilog(_component(config, block), module_name(config, block))


def _local_imports(path: Path, root: Path) -> set[Path]:
    """Source files of the ``accel`` / ``rtl_gen`` modules that ``path`` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
        for name in names:
            parts = name.split(".")
            if parts[0] in ("accel", "rtl_gen") and parts[:2] != ["rtl_gen", "synth"]:
                for candidate in (root.joinpath(*parts).with_suffix(".py"),
                                  root.joinpath(*parts, "__init__.py")):
                    if candidate.is_file():
                        found.add(candidate)
    return found


def generator_fingerprint() -> str:
    """Hash of the generator's source and Amaranth's version: part of every cache key, so that
    editing the generator never reuses a stale report.

    The source is every ``rtl_gen`` module (but ``rtl_gen.synth``) and every ``accel`` module they
    import, directly or not; edits elsewhere keep the cache.
    """
    root = Path(__file__).resolve().parents[2]
    todo = {p for p in (root / "rtl_gen").glob("*.py")}
    files: set[Path] = set()
    while todo:
        path = todo.pop()
        files.add(path)
        todo |= _local_imports(path, root) - files
    h = hashlib.sha256(metadata.version("amaranth").encode())
    for p in sorted(files):
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]
