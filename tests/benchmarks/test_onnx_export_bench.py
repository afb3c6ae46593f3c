"""benchmarks/onnx_export.py still runs: a smoke run at a tiny size (the numbers mean nothing)."""

import logging
import runpy
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "onnx_export.py"


def test_onnx_benchmark_runs_at_a_tiny_size(monkeypatch, capsys):
    args = ["--tiny", "--fixed", "--size", "28", "--repeats", "1", "--threads", "1"]
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # its `timing` module
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
    vit_logger = logging.getLogger("dinoreg_dense.backbones.vit")
    level = vit_logger.level
    try:
        runpy.run_path(str(SCRIPT), run_name="__main__")  # in-process: no second torch import
    finally:
        vit_logger.setLevel(level)  # the script silences the random-init warning
    out = capsys.readouterr().out
    for line in ("\n  torch ", "\n  onnxruntime ", "torch / onnxruntime"):
        assert line in out, out
    diff = float(out.split("max abs diff ")[1].split(",")[0])
    assert diff < 1e-4
