"""benchmarks/depth_step.py still runs: a smoke run at a tiny size (the numbers mean nothing)."""

import logging
import runpy
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "depth_step.py"


def test_depth_step_benchmark_runs_at_a_tiny_size(monkeypatch, capsys):
    args = ["--size", "28", "42", "--batch", "1", "--repeats", "1", "--threads", "1", "--tiny"]
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # its `timing` module
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
    vit_logger = logging.getLogger("dinoreg_dense.backbones.vit")
    level = vit_logger.level
    try:
        runpy.run_path(str(SCRIPT), run_name="__main__")  # in-process: no second torch import
    finally:
        vit_logger.setLevel(level)  # the script silences the random-init warning
    out = capsys.readouterr().out
    for peer in ("forward", "lin1-frozen", "lin1-upsampled", "lin4-frozen", "lin1-tuned"):
        assert f"\n{peer} " in out, out
    assert "lin1-frozen / forward" in out
