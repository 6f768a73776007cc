"""The compiled co-simulation: harness vs golden model, cycles, fault reports, whole models.

* Random GEMMs of three configurations (plain and OverQ, wrap and saturate, acc_depth 1 and
  larger, signed and unsigned lanes, Q > P, ports wider than 64 bits: w 72, b and y 144) on the
  Verilator harness, and a 16x16 OverQ array (slow): every y beat equals the golden model
  (values and both flags, operands at the rails so the flags fire), with random gaps and y
  back-pressure too; cycles equal the closed form under the canonical stimulus.
* Fault injection: a flipped bit of a received y beat (value or flag) is reported with layer,
  GEMM, (t, o), both values, the seed and a cocotb replay command, and that command's replay runs
  the same job edge for edge.
* Whole shipped digits checkpoints through the rtl back end give exactly the golden back end's
  logits, accuracy, events and cycles (plain, OverQ, and a P so narrow that both accumulators
  overflow: the RTL's flags are the golden model's); GEMMs in parallel (local processes,
  Dask) give the same outcomes; the cache resumes.

Harness builds are cached under sim_build/ by configuration hash (one per configuration here).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from accel.backends import GoldenBackend
from accel.config import ArrayConfig, OverQConfig
from accel.executor import simulate
from accel.golden import gemm
from accel.graph import load_graph
from accel.operands import random_operands
from accel.timing import timing
from sim.cycles import CycleMeter, gemm_cycles
from sim.runner import simulator_missing

CHECKPOINTS = Path(__file__).parent.parent / "models" / "checkpoints"

#: The cocotb suite's 4x4 configuration (its cocotb build is shared by the replay test).
PLAIN = ArrayConfig(rows=4, cols=4, act_bits=8, weight_bits=8, pe_acc_bits=16,
                    overflow="saturate", acc_depth=8)
#: Ports wider than 64 bits (w_data 72, b_data and y_data 144): the driver's wide-port accessors.
SIGNED = ArrayConfig(rows=2, cols=9, act_bits=4, act_signed=True, weight_bits=8, pe_acc_bits=12,
                     out_acc_bits=16, overflow="wrap", acc_depth=1)
OVERQ = ArrayConfig(rows=4, cols=3, act_bits=4, weight_bits=4, pe_acc_bits=12, out_acc_bits=16,
                    overflow="saturate", acc_depth=4, overq=OverQConfig(mode="range", cascade=1))
CONFIGS = [PLAIN, SIGNED, OVERQ]
#: Every port wide, OverQ tags on the x lanes (w_data 128, y_data 320 bits); a long build.
WIDE_OVERQ = ArrayConfig(rows=16, cols=16, act_bits=4, weight_bits=8, pe_acc_bits=16,
                         out_acc_bits=20, overflow="saturate", acc_depth=4,
                         overq=OverQConfig(mode="range", cascade=1))

pytestmark = pytest.mark.skipif(simulator_missing("verilator") is not None,
                                reason=str(simulator_missing("verilator")))


def _build(config):
    from sim.runner import build_harness

    return build_harness(config)


def _shapes(config):
    """Multi-fold, multi-group shapes with padded folds and groups, T across chunks, T = 1."""
    r, c, d = config.rows, config.cols, config.acc_depth
    return [(2 * d + 3, 2 * r + 1, 2 * c + 1), (1, 3 * r, c), (d + 1, r - 1 or 1, c + 2),
            (3, 1, 1)]


def _ops(config, shape, seed, dist):
    t, k, o = shape
    x, w, b = random_operands(config, t, k, o, dist, seed, True)
    if config.overq is not None:          # raw lane codes: zeros and outliers for the encoder
        rng = np.random.default_rng(seed)
        x = np.where(rng.random(x.shape) < 0.3, 0, x)
    return x, w, b


@pytest.mark.parametrize("config", [*CONFIGS, pytest.param(WIDE_OVERQ, marks=pytest.mark.slow)],
                         ids=lambda c: c.name)
def test_harness_equals_golden(config):
    from sim.cosim.gemm import GemmJob, StimulusSpec, run_gemm

    build = _build(config)
    flags = 0
    stalled_longer = 0
    for i, shape in enumerate(_shapes(config)):
        for dist in ("uniform", "extreme"):
            x, w, b = _ops(config, shape, i, dist)
            want = gemm(x, w, config, b)
            flags += int(want.pe_overflow.sum() + want.acc_overflow.sum())
            for stim in (StimulusSpec(), StimulusSpec(0.3, 3, 0.25, 5)):
                out = run_gemm(GemmJob(build, x, w, b, "g", i, 0, seed=7 + i, stimulus=stim))
                assert out.status == "ok", out.message
                assert out.y_beats == out.y_expected == shape[0] * -(-shape[2] // config.cols)
                assert out.bad_beats == 0 and out.first is None and out.ok
                np.testing.assert_array_equal(out.y, want.y)
                np.testing.assert_array_equal(out.pe_overflow, want.pe_overflow)
                np.testing.assert_array_equal(out.acc_overflow, want.acc_overflow)
                assert (out.pe_events, out.acc_events) == (want.pe_events, want.acc_events)
                if stim.canonical:
                    assert out.cycles == out.closed_form == gemm_cycles(*shape, config).cycles
                    assert out.latencies == [timing(config).latency]
                else:
                    stalled_longer += out.cycles > out.closed_form
    assert flags > 0                       # the flag comparison was exercised
    assert stalled_longer > 0              # the random stimulus did stall


def test_harness_watchdog_and_unfinished_sources():
    """A job the design cannot finish (a tile missing) trips the watchdog; beats a source could
    not send (two tiles too many) make the job incomplete."""
    import dataclasses

    from sim.cosim.harness import Harness
    from sim.schedule import beats

    h = Harness(_build(PLAIN))
    r = PLAIN.rows
    x, w, b = _checkpoint_gemm(PLAIN)
    bt = beats(x, w, b, PLAIN)
    short = dataclasses.replace(bt, w_lanes=bt.w_lanes[:-r], w_last=bt.w_last[:-r])
    run = h.run(short)
    assert run.status == "watchdog" and "no transfer for" in run.message
    assert f"w {len(bt.w_lanes) - r}/{len(bt.w_lanes) - r}" in run.message and run.cycles is None
    extra = dataclasses.replace(bt, w_lanes=np.concatenate([bt.w_lanes, bt.w_lanes[:2 * r]]),
                                w_last=np.concatenate([bt.w_last, bt.w_last[:2 * r]]),
                                b_lanes=np.concatenate([bt.b_lanes, bt.b_lanes[:2]]))
    run = h.run(extra)
    assert run.status == "incomplete" and "all y beats arrived but w sent" in run.message
    assert run.fields["y_data"].shape == (len(bt.y_order), PLAIN.cols)


def _checkpoint_gemm(config, seed=3):
    x, w, b = random_operands(config, 9, 2 * config.rows + 1, config.cols + 1, "uniform", seed,
                              True)
    return x, w, b


def test_fault_in_y_data_is_reported():
    from sim.cosim.gemm import GemmJob, run_gemm
    from sim.records import RecordLayout
    from sim.tb.harness import load_manifest

    build = _build(PLAIN)
    lay = RecordLayout(load_manifest(build.manifest))
    x, w, b = _checkpoint_gemm(PLAIN)
    want = gemm(x, w, PLAIN, b).y
    # bit 3 of lane 1 of y beat 4; beat 4 is (t=4, g=0) as t < T of the first column group
    bit = lay.field("y_data").offset + 1 * PLAIN.out_bits + 3
    out = run_gemm(GemmJob(build, x, w, b, "conv9", 2, 0, flip=(4, bit)))
    assert not out.ok and out.bad_beats == 1 and out.status == "ok"
    beat, t, o, field, got, exp = out.first
    assert (beat, t, o, field) == (4, 4, 1, "y_data[lane 1]")
    assert exp == want[4, 1] and got != exp and (got - exp) % 8 == 0
    assert out.y[4, 1] == got               # the RTL's value is what the model sees


def test_fault_in_a_flag_is_reported():
    from sim.cosim.gemm import GemmJob, run_gemm
    from sim.records import RecordLayout
    from sim.tb.harness import load_manifest

    build = _build(PLAIN)
    lay = RecordLayout(load_manifest(build.manifest))
    x, w, b = _checkpoint_gemm(PLAIN)
    want = bool(gemm(x, w, PLAIN, b).acc_overflow[0, 2])
    out = run_gemm(GemmJob(build, x, w, b, "fc", 0, 0,
                           flip=(0, lay.field("y_acc_ovf").offset + 2)))
    assert not out.ok and out.bad_beats == 1
    assert out.first == (0, 0, 2, "y_acc_ovf[lane 2]", int(not want), int(want))
    assert out.acc_overflow[0, 2] != want


def _model(name):
    path = CHECKPOINTS / name
    if not path.exists():
        pytest.skip(f"{path} is missing")
    return load_graph(path)


def _digits(n):
    from accel.data import load_data

    d = load_data("digits", split="test")
    return d.x[:n], d.y[:n]


def test_reported_mismatch_names_everything_and_replays(tmp_path):
    """A fault in conv2 of the digits CNN: the report names layer, GEMM, (t, o), both values, the
    seed and the cocotb replay command; the replay runs that GEMM under cocotb edge for edge."""
    from sim.cosim.backend import CosimMismatch, RtlBackend
    from sim.cosim.gemm import StimulusSpec
    from sim.runner import run
    from sim.tb.scenarios import REPLAY_FILES

    graph = _model("cnn_a2qplus_n8_p16_s0.pt")
    x, y = _digits(2)
    stim = StimulusSpec(0.2, 2, 0.2, 3)
    backend = RtlBackend(PLAIN, batch=2, stimulus=stim, seed=5, replay_dir=tmp_path / "replay",
                         flip=("conv2", 3, 5))
    with pytest.raises(CosimMismatch) as err:
        simulate(graph, [(x, y)], backend)
    text = str(err.value)
    for part in ("layer conv2", "GEMM conv2 batch 0 group 0", "(t=3, o=0)", "y_data[lane 0]",
                 "from the RTL", "from the golden model", "seed 5 (GEMM stimulus seed",
                 "accel verify --config", "--replay", "--waves fst"):
        assert part in text, part
    fail, = backend.failures
    folder = Path(fail.replay)
    assert all((folder / f).is_file() for f in REPLAY_FILES.values())
    # conv1 ran clean before conv2 failed
    assert backend.layers["conv1"].mismatches == 0 and backend.layers["conv2"].mismatches == 1
    # the command's replay: cocotb, same operands and the same stimulus edge for edge (the
    # flipped bit was the harness's, so the RTL passes there)
    res = run(ArrayConfig.load(folder / "config.json"), "replay", 1, replay=folder)
    job, = res["jobs"]
    t, o = np.load(folder / "x.npy").shape[0], np.load(folder / "w.npy").shape[1]
    assert res["mismatches"] == [] and job["y_beats"] == t * -(-o // PLAIN.cols) == 32 * 8
    assert job["edges"] == _harness_edges(PLAIN, folder)


def _harness_edges(config, folder):
    """1 + the last y edge of the saved job on the harness (what cocotb's job counts)."""
    from sim.cosim.harness import Harness
    from sim.schedule import beats
    from sim.tb.scenarios import replay_job

    job = replay_job(folder)
    run = Harness(_build(config)).run(beats(job.x, job.w, job.bias, config), job.stimulus)
    assert run.status == "ok"
    return int(run.y_edges[-1]) + 1


@pytest.mark.parametrize("name, config", [("cnn_a2qplus_n8_p16_s0.pt", PLAIN),
                                          ("cnn_baseline_n4_p32_s0.pt", OVERQ),
                                          ("mlp_baseline_n8_p32_s0.pt", PLAIN)],
                         ids=["plain", "overq", "overflowing"])
def test_checkpoint_through_rtl_equals_golden(name, config):
    """The whole model on the RTL: the golden back end's logits, accuracy, statistics and the
    cycle meter's cycles, with blocks of 3 batches split into per-batch GEMMs. The baseline MLP
    (trained for P = 32) on P = 16 overflows in both accumulators of both layers."""
    from sim.cosim.backend import RtlBackend

    graph = _model(name)
    x, y = _digits(24)
    golden = simulate(graph, [(x[i:i + 8], y[i:i + 8]) for i in range(0, 24, 8)],
                      GoldenBackend(config), [CycleMeter(config)])
    backend = RtlBackend(config, batch=8)
    rtl = simulate(graph, [(x, y)], backend)
    assert rtl.correct == golden.correct and rtl.accuracy == golden.accuracy
    assert not backend.failures
    for g, r in zip(golden.layers, rtl.layers):
        assert (r.name, r.pe_events, r.acc_events, r.pe_overflow_outputs,
                r.acc_overflow_outputs, r.exact_mismatches) == \
            (g.name, g.pe_events, g.acc_events, g.pe_overflow_outputs, g.acc_overflow_outputs,
             g.exact_mismatches)
        assert r.overq == g.overq
        cos = backend.layers[r.name]
        assert cos.gemms == 3 and cos.cycles == cos.closed_form == g.cycles
    if config.overq is not None:
        assert sum(s.overq.outliers for s in rtl.layers) > 0
    if name.startswith("mlp_baseline"):    # the flags the RTL sent back fired, in every layer
        assert all(s.pe_overflow_outputs > 0 or s.acc_overflow_outputs > 0 for s in rtl.layers)
        assert sum(s.pe_overflow_outputs for s in rtl.layers) > 0
        assert sum(s.acc_overflow_outputs for s in rtl.layers) > 0
    from accel.executor import Executor

    want = Executor(graph, GoldenBackend(config)).run(x).logits
    got = Executor(graph, RtlBackend(config, batch=8)).run(x).logits
    np.testing.assert_array_equal(got, want)


def test_parallel_cache_and_dask_agree(tmp_path):
    """Local processes and Dask give the in-process outcomes; a second run comes from the cache."""
    from sim.cosim.backend import RtlBackend
    from sim.sweep.executors import DaskExecutor, LocalExecutor

    graph = _model("mlp_a2q_n8_p16_s0.pt")
    x, y = _digits(12)
    base = simulate(graph, [(x, y)], RtlBackend(PLAIN, batch=4))
    local = RtlBackend(PLAIN, batch=4, executor=LocalExecutor(2), cache=tmp_path / "gemms")
    with local:
        res = simulate(graph, [(x, y)], local)
    assert res.correct == base.correct and local.layers["fc1"].gemms == 3
    again = RtlBackend(PLAIN, batch=4, cache=tmp_path / "gemms")
    res2 = simulate(graph, [(x, y)], again)
    assert res2.correct == base.correct
    assert sum(s.cached for s in again.layers.values()) == 6
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        dask = RtlBackend(PLAIN, batch=4, executor=DaskExecutor(cluster.scheduler_address))
        with dask:
            res3 = simulate(graph, [(x, y)], dask)
    assert res3.correct == base.correct and dask.layers["fc2"].cycles == \
        local.layers["fc2"].cycles and not dask.failures


def test_cosim_summary_reports_a_failing_gemm(tmp_path):
    """The whole-model run records a failure, goes on with the RTL's values, and its table and
    JSON carry the report and the rerun command."""
    from sim.cosim.run import cosim

    graph = _model("mlp_a2q_n8_p16_s0.pt")
    x, y = _digits(8)

    def blocks(block):
        return ([(x[i:i + block], y[i:i + block]) for i in range(0, 8, block)], 8)

    res = cosim(graph, blocks, PLAIN, batch=4, out_dir=tmp_path, flip=("fc2", 1, 0))
    assert not res.ok and len(res.failures) == 2               # both batches of fc2
    assert res.layers[0].failed_gemms == 0 and res.layers[1].failed_gemms == 2
    text = res.table()
    assert "FAILED: " in text and "2 failing GEMMs" in text
    assert "GEMM fc2 batch 0 group 0" in text and "rerun under cocotb with waves: accel verify" in text
    data = res.to_dict()
    assert data["failures"][1]["gemm"] == "fc2 batch 1 group 0"
    assert Path(data["failures"][1]["replay"]).is_dir() and data["total"]["mismatches"] == 2
