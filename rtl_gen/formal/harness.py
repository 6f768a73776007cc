"""What every formal harness is made of: the block under proof, named properties, probes.

A :class:`Harness` is an Amaranth module that instantiates one generator block (the same class
the array is built from), drives its inputs from free solver values (``AnySeq``: any value on
every clock edge), computes what the contract says the outputs must be with an independent
reference (:mod:`rtl_gen.formal.reference`), and asserts that they agree. It knows nothing about
the tools: :mod:`rtl_gen.formal.runner` turns it into RTLIL and a SymbiYosys job.

Every assertion is a named :class:`Property`: the harness computes a 1-bit signal ``prop_<name>``
that is 1 when the property holds on that step, and asserts it. A failing trace is then read
without any knowledge of the solver's cell names: the failed properties are the ``prop_`` signals
that are 0 in the trace (:mod:`rtl_gen.formal.trace`), and the :class:`Probe` signals give the
inputs in the project's terms (lane, weight, partial sum, in decimal).

Block internals that a proof must reason about (a weight bank, the output FIFO's level) are found
by name in the elaborated block (:func:`find_signal`, :func:`find_origin`), so the generator
needs no formal-only ports.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from amaranth.asserts import AnyConst, AnySeq
from amaranth.hdl import (Assert, Assume, Cover, Elaboratable, Fragment, Module, ResetSignal,
                          Shape, Signal, Value)
from amaranth.hdl import _ast  # statement classes, to look inside an elaborated block

from accel.config import ArrayConfig

__all__ = ["UNBOUNDED", "FormalError", "Property", "Probe", "Harness", "Embedded", "elaborate", "find_signal",
           "find_origin", "bounded_depth", "depth_reason", "no_reset", "free", "free_const",
           "MODES"]

#: Proof modes: ``prove`` is k-induction (unbounded: the property holds on every reachable
#: state), ``bmc`` is bounded model checking (every trace of ``depth`` steps from the initial
#: state), ``comb`` a harness without state, where one step covers every input (unbounded).
MODES = ("prove", "bmc", "comb")
#: Modes whose PASS holds for every trace, however long.
UNBOUNDED = ("prove", "comb")


class FormalError(RuntimeError):
    """A harness cannot be built, or the formal tools cannot run; the message says why."""


@dataclass(frozen=True)
class Property:
    """One asserted property of a harness.

    Attributes
    ----------
    name : str
        Short identifier (``psum``, ``y_stable``); the asserted signal is ``prop_<name>``.
    doc : str
        What it states, in the contract's words (printed with a failure and in the table).
    shows : tuple of str
        Names of probes that show what went wrong (e.g. the actual and the expected value).
    """

    name: str
    doc: str
    shows: tuple[str, ...] = ()


@dataclass(frozen=True)
class Probe:
    """A harness signal shown, in decimal, in a counterexample.

    Attributes
    ----------
    name : str
        Signal name in the harness (and in the trace).
    label : str
        What it is in the project's terms (``x lane 2``, ``weight bank 1``, ``psum in``).
    signed : bool
        Read the bits as two's complement.
    """

    name: str
    label: str
    signed: bool = False


@dataclass
class Harness:
    """A formal harness of one block for one configuration.

    Attributes
    ----------
    block : str
        Block name (``pe``, ``accmem``...); with ``part``, the proof's name ``<block>.<part>``.
    part : str
        Which proof of the block this is (``step``, ``product``, ``protocol``...).
    config : ArrayConfig
        The array configuration the block was built for.
    module : Module
        The harness (top module of the proof).
    mode : {"prove", "bmc", "comb"}
        k-induction (unbounded), bounded model checking, or a stateless check (see
        :data:`MODES`).
    depth : int
        Induction length (``prove``) or number of steps checked from the initial state (``bmc``).
    depth_reason : str
        Where the depth comes from (e.g. ``latency + fifo_depth + 2``).
    cover_depth : int
        Steps within which every cover point must be reached (default: ``depth`` + 1).
    properties : list of Property
    covers : list of Property
        Cover points: cases the proof's assertions are about, each of which some trace must
        reach (a guard against a vacuous proof, e.g. contradictory assumptions).
    probes : list of Probe
    assumes : list of str
        Environment assumptions, in words (what the proof takes for granted).
    relies_on : list of str
        Other proofs whose result this one assumes (assume-guarantee), by name.
    folder : str
        Work folder under the runner's root; default ``<config.name>-<config.hash>/<name>``. A
        proof that depends on less than the whole configuration names a shared one.
    """

    block: str
    part: str
    config: ArrayConfig
    module: Module = None  # type: ignore[assignment]  # made in __post_init__
    mode: str = "prove"
    depth: int = 1
    depth_reason: str = ""
    cover_depth: int = 0
    properties: list[Property] = field(default_factory=list)
    covers: list[Property] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    assumes: list[str] = field(default_factory=list)
    relies_on: list[str] = field(default_factory=list)
    folder: str = ""
    _parts: dict[str, list[Signal]] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        """``<block>.<part>``, e.g. ``pe.step``."""
        return f"{self.block}.{self.part}"

    def check(self, name: str, test: Value, doc: str, when: Value | bool = True,
              shows: tuple[str, ...] = ()) -> None:
        """Assert ``test`` on every step where ``when`` is 1, as property ``name``.

        Several calls with the same name AND their conditions into one property (``doc`` and
        ``shows`` of the first call are kept).
        """
        ok = Signal(name=f"ok_{name}_{sum(map(len, self._parts.values()))}")
        self.module.d.comb += ok.eq(~Value.cast(when) | test)
        if name not in self._parts:
            self._parts[name] = []
            self.properties.append(Property(name, doc, shows))
        self._parts[name].append(ok)

    def cover(self, name: str, test: Value, doc: str) -> None:
        """A case that some trace must reach (signal ``cover_<name>``; see :attr:`covers`)."""
        sig = Signal(name=f"cover_{name}", attrs={"keep": 1})  # read back from the traces
        self.module.d.comb += [sig.eq(test), Cover(sig)]
        self.covers.append(Property(name, doc))

    def probe(self, signal: Value, label: str) -> str:
        """Show ``signal`` as ``label`` in counterexamples; returns the probe's signal name."""
        value = Value.cast(signal)
        base = _probe_name(label)
        taken = {p.name for p in self.probes}
        name = next(n for n in (base, *(f"{base}_{i}" for i in range(1, len(taken) + 2)))
                    if n not in taken)
        sig = Signal(value.shape(), name=name, attrs={"keep": 1})  # kept in the trace
        self.module.d.comb += sig.eq(value)
        self.probes.append(Probe(name, label, value.shape().signed))
        return name

    def assume(self, test: Value, doc: str) -> None:
        """Constrain the environment on every step (recorded in :attr:`assumes`)."""
        self.module.d.comb += Assume(test)
        if doc not in self.assumes:
            self.assumes.append(doc)

    def finish(self) -> Module:
        """Drive every ``prop_<name>`` signal from its parts and assert it; returns the module.

        Called once, after the last :meth:`check`.
        """
        m = self.module
        for name, parts in self._parts.items():
            prop = Signal(name=f"prop_{name}", attrs={"keep": 1})  # read back from the trace
            test = parts[0]
            for part in parts[1:]:
                test = test & part
            m.d.comb += [prop.eq(test), Assert(prop)]
        return m

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise FormalError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.mode == "comb" and self.depth != 1:
            raise FormalError(f"a comb harness is checked in one step, not {self.depth}")
        if self.module is None:
            self.module = Module()
        self.cover_depth = self.cover_depth or self.depth + 1
        self.folder = self.folder or f"{self.config.name}-{self.config.hash}/{self.name}"


def _probe_name(label: str) -> str:
    keep = "".join(ch if ch.isalnum() else "_" for ch in label.lower())
    return "probe_" + "_".join(filter(None, keep.split("_")))


class Embedded(Elaboratable):
    """An already elaborated block, to be added to a harness as a submodule."""

    def __init__(self, fragment: Fragment):
        self.fragment = fragment

    def elaborate(self, platform: Any) -> Fragment:
        return self.fragment


def elaborate(dut: Any) -> tuple[Any, Fragment]:
    """The block object and its elaborated fragment.

    ``dut`` is a generator block (a ``wiring.Component``) or a fragment elaborated from one (the
    fault-injection hook of the tests rewrites a fragment before it is proven); the block is the
    fragment's first origin.
    """
    if isinstance(dut, Fragment):
        if not dut.origins:
            raise FormalError("a fragment under proof must come from elaborating a block "
                              "(Fragment.get(block, None)); this one has no origin")
        return dut.origins[0], dut
    return dut, Fragment.get(dut, None)


def _statements(stmts) -> Iterator[Any]:
    for stmt in stmts:
        if isinstance(stmt, _ast.Switch):
            for case in stmt.cases:
                yield from _statements(case[1])
        else:
            yield stmt


def find_signal(fragment: Fragment, name: str, what: str) -> Signal:
    """The signal called ``name`` that the block of ``fragment`` assigns (not its submodules).

    Parameters
    ----------
    fragment : Fragment
        An elaborated block.
    name : str
        The signal's name, as in the generated Verilog (e.g. a PE's ``weight0``).
    what : str
        What the proof needs it for, for the error message.

    Raises
    ------
    FormalError
        When no assignment to such a signal exists (the generator changed: update the harness).
    """
    for stmts in fragment.statements.values():
        for stmt in _statements(stmts):
            if isinstance(stmt, _ast.Assign):
                for sig in stmt.lhs._lhs_signals():
                    if getattr(sig, "name", None) == name:
                        return sig
    block = type(fragment.origins[0]).__name__ if fragment.origins else "the block"
    raise FormalError(f"{block} assigns no signal named {name!r}, which the proof needs as "
                      f"{what}; the generator changed, so the harness must follow it")


def find_origin(fragment: Fragment, path: tuple[str, ...], cls: type) -> tuple[Any, Fragment]:
    """The block (an instance of ``cls``) at submodule ``path`` inside ``fragment``, and its
    fragment, e.g. ``("outq", "fifo")`` for the output FIFO of :class:`rtl_gen.top.Top`."""
    frag = fragment
    for name in path:
        names = [n for _, n, _ in frag.subfragments]
        sub = frag.find_subfragment(name) if name in names else None
        if sub is None:
            raise FormalError(f"no submodule {'.'.join(path)!r} in the elaborated block; the "
                              f"generator changed, so the harness must follow it")
        frag = sub
    for origin in frag.origins or ():
        if isinstance(origin, cls):
            return origin, frag
    raise FormalError(f"submodule {'.'.join(path)!r} is not a {cls.__name__}")


def bounded_depth(config: ArrayConfig, depth: int | None = None) -> int:
    """Steps of a bounded proof: ``depth``, or by default ``latency + fifo_depth + 2`` edges of
    :func:`accel.timing.timing` (a result comes out, the FIFO fills under back-pressure and
    drains); a smaller ``depth`` is an error naming the minimum."""
    from accel.timing import timing

    t = timing(config)
    least = t.latency + t.fifo_depth + 2
    if depth is None:
        return least
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < least:
        raise ValueError(f"depth must be an integer of at least latency + fifo_depth + 2 = "
                         f"{least} for {config.name}, not {depth!r}")
    return depth


def depth_reason(depth: int | None) -> str:
    """Where a bounded proof's depth comes from, for the results table."""
    return "latency + fifo_depth + 2" if depth is None else "given depth"


def no_reset(m: Module) -> None:
    """Hold the ``sync`` reset low on every step: a block proof covers the datapath from any
    state, and reset is the top level's business (``top.protocol``)."""
    m.d.comb += Assume(~ResetSignal("sync"))


def free(m: Module, shape: Any, name: str) -> Any:
    """A signal that takes any value on every step (``AnySeq``), driven once and named (a
    layout gives a view, as ``Signal`` does)."""
    sig = Signal(shape, name=name)
    m.d.comb += Value.cast(sig).eq(AnySeq(Shape.cast(shape)))
    return sig


def free_const(m: Module, shape: Any, name: str) -> Any:
    """A signal with any value, the same on every step (``AnyConst``), driven once and named."""
    sig = Signal(shape, name=name)
    m.d.comb += Value.cast(sig).eq(AnyConst(Shape.cast(shape)))
    return sig
