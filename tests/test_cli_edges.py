"""The command line's edges: output paths checked before work, relative paths, sweep defaults that
work for the obvious commands, and one-line messages for bad operand files."""

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from accel.cli import main
from accel.cli.base import OutputPathError, check_output
from sim.sweep.recommend import choose_config, recommend

GEMM = ["gemm", "-T", "4", "-K", "6", "-O", "2"]
SWEEP = ["sweep", "--model", "gemm", "--rows", "2", "--cols", "2", "--gemm", "t=4", "--gemm", "k=5",
         "--gemm", "o=2", "--workers", "1"]


@pytest.fixture
def blocker(tmp_path):
    """A plain file where a folder is expected."""
    f = tmp_path / "afile"
    f.write_text("not a folder\n")
    return f


# (argv before the bad path, flag, kind): every output flag of every verb
OUTPUTS = [
    (GEMM, "--json", "file"), (GEMM, "--save-y", "file"),
    (["generate"], "-o", "dir"), (["generate"], "--json", "file"),
    (["verify", "--rows", "2", "--cols", "2"], "--build-root", "dir"),
    (["synth", "-b", "pe"], "--cache-dir", "dir"), (["synth", "-b", "pe"], "--json", "file"),
    (SWEEP, "--db", "file"), (SWEEP, "--csv", "file"), (SWEEP, "--export-json", "file"),
    (SWEEP, "--json", "file"),
    (["report"], "-o", "dir"), (["report"], "--csv", "file"),
    (["report"], "--export-json", "file"),
    (["demo", "--no-synth", "--no-verify"], "-o", "dir"),
    (["quantize", "--model", "mlp"], "--out", "file"),
    (["simulate", "digits-cnn-random"], "--json", "file"),
]


@pytest.mark.parametrize("argv, flag, kind", OUTPUTS, ids=lambda v: v if isinstance(v, str) else v[0])
def test_an_output_under_a_file_is_a_one_line_error_before_work(argv, flag, kind, blocker, tmp_path,
                                                                  capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = str(blocker / "out") if kind == "dir" or flag != "--save-y" else str(blocker / "y.npy")
    start = time.perf_counter()
    assert main([*argv, flag, bad]) == 2
    err = capsys.readouterr().err
    verb = argv[0]
    assert err.startswith(f"accel {verb}: error: {flag}") and err.count("\n") == 1, err
    assert f"{blocker} in the path is a file, not a folder" in err
    assert time.perf_counter() - start < 5                     # no work was done
    assert not (tmp_path / "results.db").exists()


@pytest.mark.parametrize("argv, flag", [(GEMM, "--json"), (GEMM, "--save-y"), (SWEEP, "--db")])
def test_a_folder_given_as_an_output_file(argv, flag, tmp_path, capsys):
    assert main([*argv, flag, str(tmp_path)]) == 2
    assert f"{flag} {tmp_path}: is a folder; give a file path" in capsys.readouterr().err


def test_a_file_given_as_an_output_folder(blocker, capsys):
    assert main(["generate", "-o", str(blocker)]) == 2
    assert f"-o/--out-dir {blocker}: the path is a file, not a folder" in capsys.readouterr().err


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a tiny tmpfs (root only); yields a function ``mount(options) -> folder``."""
    mounted = []

    def mount(options):
        d = tmp_path / f"mnt{len(mounted)}"
        d.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(d)],
                           capture_output=True, text=True)
        if r.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()})")
        mounted.append(d)
        return d

    yield mount
    for d in mounted:
        subprocess.run(["umount", str(d)], capture_output=True)


def test_a_read_only_folder(tmpfs, capsys):
    ro = tmpfs("ro,size=1m")
    assert main([*GEMM, "--json", str(ro / "g.json")]) == 2
    err = capsys.readouterr().err
    assert f"--json {ro / 'g.json'}: cannot write there: it is on a read-only file system" in err
    with pytest.raises(OutputPathError, match="read-only file system"):
        check_output(ro / "sub" / "rtl", "-o", "dir")


def test_a_full_disk(tmpfs, capsys):
    full = tmpfs("size=256k")
    with open(full / "filler", "wb") as f:     # fill it up
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    assert main([*SWEEP, "--db", str(full / "r.db")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"accel sweep: error: --db {full / 'r.db'}: ")
    assert "no space left on its device" in err and err.count("\n") == 1
    (full / "filler").unlink()                  # room now, but below the 1 MiB minimum
    with pytest.raises(OutputPathError, match=r"no space left on its device \(.* bytes free, at "
                                              r"least 1,048,576 needed\)"):
        check_output(full / "x.json", "--json")


def test_stdout_json_and_relative_paths_pass(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([*GEMM, "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["T"] == 4
    assert check_output("a/b/c.json", "--json") == tmp_path / "a/b/c.json"
    assert not (tmp_path / "a").exists()                # checking creates nothing
    assert main([*GEMM, "--json", "rel/g.json", "--save-y", "rel/y.npy"]) == 0
    assert np.load(tmp_path / "rel/y.npy").shape == (4, 2)


def test_verify_with_a_relative_build_root(tmp_path, monkeypatch, capsys):
    """``accel verify --build-root sb`` from another folder (it reported FAILED on correct RTL)."""
    from sim.runner import simulator_missing

    if simulator_missing("icarus"):
        pytest.skip(simulator_missing("icarus"))
    monkeypatch.chdir(tmp_path)
    assert main(["verify", "--sim", "icarus", "--rows", "2", "--cols", "2", "--scenario",
                 "canonical", "--jobs", "1", "--build-root", "sb"]) == 0
    cap = capsys.readouterr()
    assert cap.out.rstrip().splitlines()[-1].startswith("PASSED on icarus: ")
    assert "icarus build of sa2x2" in cap.err and "done in" in cap.err
    assert list((tmp_path / "sb").glob("icarus/*/run-canonical-s1/results.json"))


# --- sweep defaults ---------------------------------------------------------------------------

def test_sweep_model_cnn_runs_what_exists(capsys):
    """``accel sweep --model cnn`` (and a P grid) skips quantizers without a checkpoint at a P."""
    assert main(["sweep", "--model", "cnn", "--dry-run", "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["points"] == ["cnn baseline P=32 (ckpt P=32) 8x8 wrap"]
    assert main(["sweep", "--model", "cnn", "--grid", "pe_acc_bits=16,18", "--dry-run"]) == 0
    cap = capsys.readouterr()
    assert cap.out.startswith("3 points:") and "cnn a2q+ P=16 (ckpt P=16) 8x8 wrap" in cap.out
    assert ("note: cnn a2q (N = 8, M = 8): no checkpoint trained for P = 18 (it has 16, 20); "
            "those points are skipped") in cap.err


def test_readme_toml_example_runs(tmp_path, capsys):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    f = tmp_path / "sweep.toml"
    f.write_text(block)
    assert main(["sweep", str(f), "--dry-run"]) == 0
    assert int(capsys.readouterr().out.split()[0]) > 0


def test_sweep_list_shows_the_checkpoints(capsys):
    assert main(["sweep", "--list"]) == 0
    out = capsys.readouterr().out
    rows = [" ".join(line.split()) for line in out.splitlines()]
    for want in ("cnn a2q 8 8 16, 20 ", "mlp baseline 8 8 32 ", "fashion-resnet a2q+ 4 4 12 "):
        assert any(r.startswith(want) for r in rows), want
    assert main(["sweep", "--list", "--json", "-"]) == 0
    cks = json.loads(capsys.readouterr().out)["checkpoints"]
    assert {"model": "mlp", "quantizer": "oaq", "act_bits": 8, "weight_bits": 8,
            "target_p": 16} == {k: cks[-1][k] for k in ("model", "quantizer", "act_bits",
                                                          "weight_bits", "target_p")}


def test_gemm_workload_is_not_called_a_checkpoint():
    row = {"config_hash": "c", "model": "gemm", "quantizer": "none", "target_p": 0, "rows": 4,
           "cols": 4, "pe_acc_bits": 20, "out_acc_bits": 20, "overflow": "wrap", "accuracy": 1.0,
           "float_accuracy": 1.0, "pe_events": 0, "acc_events": 0, "adv_pe_events": 0,
           "adv_acc_events": 0, "cycles": 10, "area": None}
    (rec,) = recommend([row], 1.0)
    text = rec.summary() + choose_config([row], 1.0).summary()
    assert "checkpoint" not in text and "quantizer none" not in text
    assert "random integer GEMM (no quantizer): accuracy 100.00 %" in text
    assert "10 cycles per GEMM" in text and "within 1 percentage points of float" in text


# --- operand files ----------------------------------------------------------------------------

@pytest.fixture
def operands(tmp_path):
    np.save(tmp_path / "w.npy", np.ones((5, 3), dtype=np.int64))
    np.save(tmp_path / "x.npy", np.ones((2, 5), dtype=np.int64))
    return tmp_path


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("101 3 4\n"), "x.npy: a text file, not a .npy array (no .npy header); "
                                          "--x expects activation codes x[T, K] as a NumPy .npy"),
    (lambda p: np.save(p, np.ones((0, 5), dtype=np.int64)),
     "x.npy has T = 0 (shape (0, 5)); T must be a positive integer"),
    (lambda p: np.save(p, np.ones((2, 5))), "x.npy: holds a float64 array of shape (2, 5)"),
    (lambda p: np.save(p, np.array([{"a": 1}], dtype=object)), "x.npy: not a readable .npy array"),
    (lambda p: None, "x.npy: no such file; --x expects"),
])
def test_bad_operand_files(make, message, operands, capsys):
    x = operands / "x.npy"
    x.unlink()
    make(x)
    assert main(["gemm", "--x", str(x), "--w", str(operands / "w.npy")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert main(["gemm", "-T", "0"]) == 2 and "-T must be a positive integer, not 0" in \
        capsys.readouterr().err


def test_good_operand_files(operands, capsys):
    assert main(["gemm", "--x", str(operands / "x.npy"), "--w", str(operands / "w.npy"),
                 "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["T"] == 2
    assert os.path.exists(operands / "x.npy")
