"""The ONNX QDQ twin of a float reference model, as a user would make it with onnxruntime.

A float checkpoint (:func:`models.recipes.save_float`) is exported with ``torch.onnx.export``
(TorchScript exporter, opset 17, dynamic batch) and quantized by
``onnxruntime.quantization.quantize_static``: QDQ format, per-channel symmetric int8 weights,
uint8 activations, MinMax calibration on the first ``calibration`` training images of the
model's dataset. Nothing of accel-hw is inside the file: it is what `accel simulate MODEL.onnx`
meets in the field. Regenerating it takes seconds, so the twin is built by the tests, not shipped.

Run::

    python -m models.onnx_twin models/checkpoints/fashion_float_s0.pt out/fashion_qdq.onnx
    accel simulate out/fashion_qdq.onnx --data fashion-mnist
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from accel.data import model_data

#: Images the MinMax calibration sees (the first of the training split).
CALIBRATION = 512
#: Opset of the exported float model.
OPSET = 17


def export_qdq(float_checkpoint: str | Path, out: str | Path, calibration: int = CALIBRATION,
               per_channel: bool = True) -> Path:
    """Write the QDQ twin of ``float_checkpoint`` to ``out`` (module docstring); returns ``out``."""
    import torch
    from onnxruntime import quantization

    from models.recipes import load_float

    model, meta = load_float(float_checkpoint)
    x = model_data(meta, split="train").x[:calibration]
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        fp = Path(tmp) / "float.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model.eval(), (torch.from_numpy(x[:1]),), str(fp), dynamo=False,
                              input_names=["x"], output_names=["logits"],
                              dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
                              opset_version=OPSET)

        class Reader(quantization.CalibrationDataReader):
            def __init__(self) -> None:
                self.batches = iter([{"x": x[i:i + 64]} for i in range(0, len(x), 64)])

            def get_next(self) -> dict[str, np.ndarray] | None:
                return next(self.batches, None)

        quantization.quantize_static(str(fp), str(out), Reader(),
                                     quant_format=quantization.QuantFormat.QDQ,
                                     per_channel=per_channel,
                                     activation_type=quantization.QuantType.QUInt8,
                                     weight_type=quantization.QuantType.QInt8)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("checkpoint", type=Path, help="float checkpoint (models/checkpoints/*_float_s0.pt)")
    ap.add_argument("out", type=Path, help="the .onnx file to write")
    ap.add_argument("--calibration", type=int, default=CALIBRATION,
                    help=f"training images for MinMax calibration (default {CALIBRATION})")
    ap.add_argument("--per-tensor", action="store_true", help="per-tensor weight scales")
    args = ap.parse_args(argv)
    if args.calibration < 1:
        ap.error(f"--calibration must be at least 1, not {args.calibration}")
    if not args.out.parent.is_dir():
        ap.error(f"cannot write {args.out}: folder {args.out.parent} does not exist")
    try:
        export_qdq(args.checkpoint, args.out, args.calibration, not args.per_tensor)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
