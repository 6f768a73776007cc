"""cocotb suite on the generated RTL: a fixed covering set on Verilator and Icarus.

Each test builds one configuration (cached under sim_build/ by configuration hash) and runs every
scenario of sim.tb.scenarios with one seed: values bit for bit against accel.golden, protocol,
latency against the manifest, cycles under the canonical stimulus (written to the results JSON
and to sim_build/cycles.json), and the targeted coverage bins. Skipped, with the reason, when a
simulator is missing. ``-m slow`` runs the full cross product.
"""

from __future__ import annotations

import itertools

import pytest

from accel.config import ArrayConfig
from sim.runner import VerifyError, run, simulator_missing, xcheck

SEED = 11


def cfg(r: int, c: int, n: int, signed: bool, m: int, p: int | None, q: int | None,
        mode: str, depth: int) -> ArrayConfig:
    return ArrayConfig(rows=r, cols=c, act_bits=n, act_signed=signed, weight_bits=m,
                       pe_acc_bits=n + m if p is None else p, out_acc_bits=q, overflow=mode,
                       acc_depth=depth)


#: Together: 2x2, 4x4, 8x8 and non-square arrays; P from N + M to 32; wrap and saturate;
#: Q > P; signed and unsigned activations; acc_depth 1 and larger.
VERILATOR_SET = [
    cfg(2, 2, 4, False, 4, None, None, "wrap", 4),
    cfg(2, 2, 4, True, 4, None, None, "saturate", 1),
    cfg(4, 4, 8, False, 8, None, None, "saturate", 8),
    cfg(4, 4, 8, True, 8, None, 24, "wrap", 2),
    cfg(8, 8, 8, False, 8, 32, None, "wrap", 64),
    cfg(8, 8, 8, True, 8, 20, 28, "saturate", 16),
    cfg(3, 5, 6, False, 5, None, None, "wrap", 2),
    cfg(5, 2, 4, True, 6, 12, 16, "saturate", 1),
]
ICARUS_SET = [VERILATOR_SET[0], VERILATOR_SET[1], VERILATOR_SET[6]]


def _needs(sim: str) -> None:
    why = simulator_missing(sim)
    if why:
        pytest.skip(why)


def _check(res: dict, config: ArrayConfig) -> None:
    assert res["error"] is None and res["mismatches"] == []
    assert res["coverage"]["missing"] == []
    assert res["y_checked"] == res["transfers"]["y"] > 0
    canonical = [j for j in res["jobs"] if j["canonical"]]
    assert canonical and all(j["latency_seen"] == [res["timing"]["latency"]] for j in canonical)
    multi = [j for j in canonical if j["folds"] > 1 and j["groups"] > 1]
    assert multi and all(j["cycles"] > j["T"] * j["folds"] * j["groups"] for j in multi)
    # the targets of the whole suite on this configuration
    bins = res["coverage"]["bins"]
    for b in ("x_first_wait", "w_wait_complete_shadow", "y_backpressure_fifo_full",
              "same_addr_consecutive", "padded_last_fold", "reset_in_flight",
              f"acc_ovf_high_{config.overflow}", f"acc_ovf_low_{config.overflow}"):
        assert bins.get(b, 0) > 0, b


@pytest.mark.parametrize("config", VERILATOR_SET, ids=lambda c: c.name)
def test_verilator(config: ArrayConfig) -> None:
    _needs("verilator")
    _check(run(config, "all", SEED, "verilator"), config)


@pytest.mark.parametrize("config", ICARUS_SET, ids=lambda c: c.name)
def test_icarus_matches_verilator(config: ArrayConfig) -> None:
    _needs("icarus")
    _needs("verilator")
    ica = run(config, "all", SEED, "icarus")
    _check(ica, config)
    ver = run(config, "all", SEED, "verilator")
    assert ica["y_digest"] == ver["y_digest"]
    assert [j.get("cycles") for j in ica["jobs"]] == [j.get("cycles") for j in ver["jobs"]]


def test_xcheck_two_seeds_agree() -> None:
    _needs("verilator")
    runs = xcheck(VERILATOR_SET[1], "all", SEED)
    assert len(runs) == 2 and runs[0]["y_digest"] == runs[1]["y_digest"]


def test_measured_cycles_multi_fold() -> None:
    """Cycles of multi-fold GEMMs under the canonical stimulus, for the cycle model."""
    _needs("verilator")
    from sim.runner import measure_cycles

    config = VERILATOR_SET[2]
    shapes = [(10, 9, 5), (3, 12, 8), (20, 4, 4)]
    cycles = measure_cycles(config, shapes, seed=SEED)
    assert len(cycles) == 3
    # never faster than streaming every x beat once after the first tile and the latency
    from accel.timing import timing

    lat = timing(config).latency
    for (t, k, o), cyc in zip(shapes, cycles):
        beats = t * -(-k // config.rows) * -(-o // config.cols)
        assert cyc >= beats + config.rows + lat


def test_injected_fault_is_reported() -> None:
    """A y_data bit flipped in the harness: first (t, o), both values, seed and rerun command."""
    _needs("verilator")
    with pytest.raises(VerifyError) as err:
        run(VERILATOR_SET[0], "canonical", SEED, flip_y_bit=9)
    msg = str(err.value)
    assert "job canonical0: y beat 0 (t=0, o=1): y_data[lane 1] = " in msg
    assert f"seed {SEED}" in msg and "rerun: accel verify --config " in msg
    assert err.value.results["mismatches"]


@pytest.mark.parametrize("kw, msg", [
    ({"scenario": "nope"}, "unknown scenario 'nope'; valid scenarios are all, cycles, replay, "
                           "canonical"),
    ({"scenario": "cycles"}, "scenario 'cycles' needs shapes"),
    ({"scenario": "replay"}, "scenario 'replay' needs replay: the folder of a saved GEMM job"),
    ({"sim": "icarus", "xcheck": True}, "X-check mode needs Verilator"),
    ({"waves": "vcd2"}, "waves must be one of fst, vcd or None, not 'vcd2'"),
])
def test_run_argument_errors(kw: dict, msg: str) -> None:
    kw = {"scenario": "canonical", **kw}
    with pytest.raises((ValueError, Exception), match=msg):
        run(VERILATOR_SET[0], seed=SEED, **kw)


def test_missing_simulator_message() -> None:
    assert "unknown simulator 'vcs'; valid simulators are verilator, icarus" == \
        simulator_missing("vcs")


FULL = [cfg(r, c, n, s, m, p, q, mode, d)
        for (r, c), s, mode, (n, m, p, q), d in itertools.product(
            [(2, 2), (4, 4), (8, 8), (3, 5), (6, 2)], [False, True], ["wrap", "saturate"],
            [(4, 4, None, None), (8, 8, None, 24), (8, 8, 32, None)], [1, 4, 64])]


@pytest.mark.slow
@pytest.mark.parametrize("config", FULL, ids=lambda c: c.name)
def test_full_cross_product(config: ArrayConfig) -> None:
    _needs("verilator")
    _check(run(config, "all", SEED, "verilator"), config)
