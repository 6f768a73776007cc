"""ArrayConfig: validation messages, derived widths, serialisation, hash and CLI flags."""

import argparse
import dataclasses
import json

import pytest

from accel.config import (ArrayConfig, ConfigError, OverQConfig, add_config_arguments,
                          config_from_args)


@pytest.mark.parametrize("kwargs, message", [
    ({"rows": 0}, "rows must be between 1 and 1024, not 0"),
    ({"cols": 2.5}, "cols must be an integer, not 2.5"),
    ({"act_bits": 0}, "act_bits must be between 1 and 16, not 0"),
    ({"weight_bits": 1}, "weight_bits must be between 2 and 16, not 1"),
    ({"act_signed": 1}, "act_signed must be true or false, not 1"),
    ({"overflow": "clip"}, "overflow must be one of 'wrap', 'saturate', not 'clip'"),
    ({"acc_depth": 12}, "acc_depth must be a power of two (1, 2, 4, ...), not 12"),
    ({"pe_acc_bits": 15},
     "pe_acc_bits must be between 16 and 64 (P must hold one exact 8x8-bit product, "
     "N + M = 16), not 15"),
    ({"pe_acc_bits": 20, "out_acc_bits": 19},
     "out_acc_bits must be between 20 and 64 (Q may not be narrower than P = 20"),
    ({"pe_acc_bits": 32, "out_acc_bits": 65}, "out_acc_bits must be between 32 and 64"),
    ({"overq": OverQConfig(), "act_signed": True}, "overq requires unsigned activations"),
    ({"overq": OverQConfig(cascade=7), "rows": 8},
     "overq.cascade must be between 0 and 6 for rows = 8"),
    ({"overq": OverQConfig(mode="range"), "pe_acc_bits": 23},
     "pe_acc_bits must be between 24 and 64 (OverQ range lanes are 16 bits, so P must be at "
     "least 16 + M = 24), not 23"),
    ({"overq": OverQConfig(mode="both"), "pe_acc_bits": 31},
     "P must be at least 24 + M = 32"),
    ({"overq": {"mode": "range"}}, "overq must be an OverQConfig or None"),
])
def test_invalid_values_name_field_value_and_range(kwargs, message):
    with pytest.raises(ConfigError) as e:
        ArrayConfig(**kwargs)
    assert message in str(e.value)


def test_overq_config_errors():
    with pytest.raises(ConfigError, match="overq.mode must be one of 'range', 'precision', 'both', not 'fast'"):
        OverQConfig(mode="fast")
    with pytest.raises(ConfigError, match="overq.cascade must be at least 0, not -1"):
        OverQConfig(cascade=-1)


def test_keyword_only_and_frozen():
    with pytest.raises(TypeError):
        ArrayConfig(8, 8)  # type: ignore[misc]
    cfg = ArrayConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.rows = 4  # type: ignore[misc]


def test_derived_widths_and_ranges():
    cfg = ArrayConfig(rows=4, cols=3, act_bits=4, act_signed=True, weight_bits=3, pe_acc_bits=9,
                      acc_depth=1)
    assert cfg.out_bits == 9 and cfg.product_bits == 7 and cfg.min_pe_acc_bits == 7
    assert cfg.act_range == (-8, 7) and cfg.weight_range == (-4, 3)
    assert cfg.pe_range == (-256, 255) and cfg.out_range == cfg.pe_range
    assert cfg.addr_bits == 1 and cfg.lane_bits == 4 and cfg.frac_bits == 0
    assert ArrayConfig(acc_depth=64).addr_bits == 6
    oq = ArrayConfig(act_bits=4, weight_bits=4, pe_acc_bits=16,
                     overq=OverQConfig(mode="both", cascade=2))
    assert oq.lane_bits == 12 and oq.frac_bits == 4 and oq.lane_range == (0, 4095)
    assert oq.min_pe_acc_bits == 16


def test_replace_revalidates_and_q_follows_p():
    cfg = ArrayConfig(pe_acc_bits=32)
    narrow = dataclasses.replace(cfg, pe_acc_bits=20)
    assert narrow.out_bits == 20            # Q defaults to P, also after replace
    with pytest.raises(ConfigError, match="pe_acc_bits"):
        dataclasses.replace(cfg, pe_acc_bits=10)


@pytest.mark.parametrize("suffix", [".json", ".toml"])
@pytest.mark.parametrize("cfg", [
    ArrayConfig(),
    ArrayConfig(rows=3, cols=5, act_bits=4, act_signed=True, weight_bits=4, pe_acc_bits=12,
                out_acc_bits=20, overflow="saturate", acc_depth=1),
    ArrayConfig(act_bits=4, weight_bits=4, pe_acc_bits=16, overq=OverQConfig(mode="precision", cascade=2)),
])
def test_save_load_roundtrip(tmp_path, cfg, suffix):
    path = tmp_path / f"array{suffix}"
    cfg.save(path)
    back = ArrayConfig.load(path)
    assert back == dataclasses.replace(cfg, out_acc_bits=cfg.out_bits)
    assert back.hash == cfg.hash


def test_hash_is_stable_and_resolves_q():
    a, b = ArrayConfig(pe_acc_bits=24), ArrayConfig(pe_acc_bits=24, out_acc_bits=24)
    assert a.hash == b.hash and len(a.hash) == 12
    assert ArrayConfig(pe_acc_bits=24, out_acc_bits=25).hash != a.hash
    # the hash depends only on the resolved values, so it survives a JSON round trip
    assert ArrayConfig.from_dict(json.loads(json.dumps(a.to_dict()))).hash == a.hash


def test_load_errors(tmp_path):
    bad = tmp_path / "a.toml"
    bad.write_text("rows = [")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        ArrayConfig.load(bad)
    unk = tmp_path / "b.json"
    unk.write_text('{"rows": 4, "colums": 4}')
    with pytest.raises(ConfigError, match="unknown configuration field\\(s\\) colums; valid fields are"):
        ArrayConfig.load(unk)
    with pytest.raises(ConfigError, match="must end in .json or .toml"):
        ArrayConfig.load(tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="cannot read config file"):
        ArrayConfig.load(tmp_path / "missing.json")
    oq = tmp_path / "d.json"
    oq.write_text('{"overq": {"mode": "range", "depth": 2}}')
    with pytest.raises(ConfigError, match="unknown overq field\\(s\\) depth"):
        ArrayConfig.load(oq)


def test_cli_flags_derive_from_fields(tmp_path):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    flags = {a.dest for a in parser._actions}
    for f in dataclasses.fields(ArrayConfig):
        if f.name != "overq":
            assert f.name in flags
    assert {"overq_mode", "overq_cascade", "config"} <= flags
    assert config_from_args(parser.parse_args([])) == ArrayConfig()
    path = tmp_path / "a.toml"
    ArrayConfig(rows=4, pe_acc_bits=24, overflow="saturate").save(path)
    cfg = config_from_args(parser.parse_args(["--config", str(path), "--pe-acc-bits", "24",
                                              "--overq-cascade", "1"]))
    assert cfg.rows == 4 and cfg.pe_acc_bits == 24 and cfg.overflow == "saturate"
    assert cfg.overq == OverQConfig(mode="range", cascade=1)
    assert config_from_args(parser.parse_args(["--act-signed"])).act_signed is True
    cfg2 = config_from_args(parser.parse_args(["--overq-mode", "both", "--act-bits", "4",
                                               "--weight-bits", "4", "--pe-acc-bits", "16"]))
    assert cfg2.overq == OverQConfig(mode="both", cascade=0)
