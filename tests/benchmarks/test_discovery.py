"""benchmarks/discovery.py still runs: a smoke run at a tiny size (the numbers mean nothing)."""

import logging
import runpy
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "discovery.py"


def test_discovery_benchmark_runs_at_a_tiny_size(monkeypatch, capsys):
    args = ["--grids", "8", "--size", "56", "--batches", "1", "--repeats", "1", "--tiny"]
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # its `timing` module
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args, "--threads", "1"])
    vit_logger = logging.getLogger("dinoreg_dense.backbones.vit")
    level = vit_logger.level
    try:
        runpy.run_path(str(SCRIPT), run_name="__main__")  # in-process: no second torch import
    finally:
        vit_logger.setLevel(level)  # the script silences the random-init warning
    out = capsys.readouterr().out
    for line in ("\n  ours ", "\n  numpy ", "\n  backbone ", "\n  discovery ", "numpy / ours"):
        assert line in out, out
    assert "discovery rate / backbone rate" in out
