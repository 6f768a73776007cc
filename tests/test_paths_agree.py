"""One model, one answer: ``accel simulate`` and a sweep point run every shipped checkpoint the same
way (the same graph, executor and back end), with and without OverQ, and ``accel simulate``
reproduces the OverQ study's table."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from accel.cli import main
from accel.config import ArrayConfig, OverQConfig
from accel.graph import load_graph
from sim.sweep.evaluate import evaluate_point
from sim.sweep.spec import PointSpec

CKPT = Path(__file__).resolve().parent.parent / "models" / "checkpoints"
INT_CKPTS = sorted(p for p in CKPT.glob("*_p*_s0.pt"))
#: Test images per dataset (digits: the whole split of 360; Fashion-MNIST: the first 256).
SAMPLES = {None: 360, "digits": 360, "fashion-mnist": 256}
#: No OverQ, range with cascade 0 and 2, precision, both.
VARIANTS = [None, OverQConfig(mode="range", cascade=0), OverQConfig(mode="range", cascade=2),
            OverQConfig(mode="precision", cascade=0), OverQConfig(mode="both", cascade=1)]


def _config(path: Path, overq: OverQConfig | None) -> ArrayConfig:
    cfg = ArrayConfig.from_dict(load_graph(path).meta["config"])
    if overq is None:
        return cfg
    wide = dataclasses.replace(cfg, overq=overq, pe_acc_bits=max(cfg.pe_acc_bits, 32), out_acc_bits=None)
    return dataclasses.replace(wide, pe_acc_bits=max(wide.pe_acc_bits, wide.min_pe_acc_bits))


def _simulate(path: Path, cfg: ArrayConfig, capsys, extra: tuple[str, ...] = ()) -> dict:
    flags = ["--rows", str(cfg.rows), "--cols", str(cfg.cols), "--act-bits", str(cfg.act_bits),
             "--weight-bits", str(cfg.weight_bits), "--pe-acc-bits", str(cfg.pe_acc_bits),
             "--out-acc-bits", str(cfg.out_bits), "--overflow", cfg.overflow]
    if cfg.overq is not None:
        flags += ["--overq-mode", cfg.overq.mode, "--overq-cascade", str(cfg.overq.cascade)]
    assert main(["simulate", str(path), "--no-extremes", "--json", "-", *flags,
                 *extra]) == 0
    return json.loads(capsys.readouterr().out)


#: The OverQ variants a Fashion-MNIST checkpoint runs by default: range c=0 and both c=1.
QUICK_OVERQ = (VARIANTS[1], VARIANTS[4])


def _vid(v: OverQConfig | None) -> str:
    return "plain" if v is None else f"{v.mode}{v.cascade}"


def _cases() -> list:
    """Every checkpoint x variant; of the Fashion-MNIST residual nets (16 s a variant here), all
    run plain and one runs two OverQ variants by default, the rest under ``-m slow``."""
    out = []
    for path in INT_CKPTS:
        for v in VARIANTS:
            quick = (not path.name.startswith("fashion_") or v is None
                     or (path.name == "fashion_a2q_n4_p12_s0.pt" and v in QUICK_OVERQ))
            out.append(pytest.param(path, v, id=f"{path.stem}-{_vid(v)}",
                                    marks=() if quick else pytest.mark.slow))
    return out


@pytest.mark.parametrize("path, overq", _cases())
def test_simulate_and_sweep_agree(path, overq, capsys):
    cfg = _config(path, overq)
    n = SAMPLES[load_graph(path).meta.get("dataset")]
    sim = _simulate(path, cfg, capsys, ("--limit", str(n)))       # batches of 256 images
    row = evaluate_point(PointSpec(config=cfg, model="cnn", checkpoint=str(path),
                                   adversarial=False, options={"limit": n}))    # all at once
    assert sim["samples"] == row["samples"] == n
    assert sim["accuracy"] == row["accuracy"]
    got = [{k: lay[k] for k in ("name", "outputs", "pe_events", "acc_events")} for lay in sim["layers"]]
    want = [{k: lay[k] for k in ("name", "outputs", "pe_events", "acc_events")} for lay in row["layers"]]
    assert got == want
    assert [lay["affected_outputs"] for lay in sim["layers"]] == [lay["affected"] for lay in row["layers"]]
    if overq is not None:
        assert all(lay["overq"]["lanes"] > 0 for lay in sim["layers"])


def test_simulate_reproduces_the_overq_study(capsys):
    from models.digits import load_split
    from models.overq_study import CHECKPOINT, study

    graph = load_graph(CHECKPOINT)
    _, _, x, y = load_split()
    base = ArrayConfig(rows=8, act_bits=4, weight_bits=4, pe_acc_bits=32)
    rows = study(graph, x.numpy(), y.numpy(), base, cascades=range(3), tightenings=(1,))
    for r in rows:
        oq = None if r["overq"] == "clamp" else OverQConfig(
            mode=r["overq"].split()[0], cascade=int(r["overq"].split("=")[1]))
        cfg = base if oq is None else dataclasses.replace(base, overq=oq)
        sim = _simulate(CHECKPOINT, cfg, capsys)
        assert sim["accuracy"] == r["accuracy"], r["overq"]
