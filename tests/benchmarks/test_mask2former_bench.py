"""benchmarks/mask2former.py still runs: a smoke run at a tiny size (the numbers mean nothing)."""

import json
import runpy
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "mask2former.py"
TINY = ["--tiny", "--size", "56", "--repeats", "1", "--threads", "1"]


@pytest.fixture
def script(monkeypatch):
    pytest.importorskip("transformers.models.mask2former.modeling_mask2former")
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # its `timing` module

    def run(*args: str) -> None:
        monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
        runpy.run_path(str(SCRIPT), run_name="__main__")  # in-process: no second torch import

    return run


def test_timing_runs_both_peers_and_their_parts(script, capsys):
    script(*TINY, "--batches", "1", "2", "--no-memory")
    out = capsys.readouterr().out
    for peer in ("ours", "hf", "ours-pixel", "hf-pixel", "ours-transformer", "hf-transformer"):
        assert f"\n{peer} " in out, out
    assert "batch 1: ours / hf" in out and "batch 2: ours / hf" in out, out


@pytest.mark.parametrize(("peer", "mode"), [("ours", "backward"), ("hf", "forward")])
def test_memory_child_prints_its_peak(script, capsys, peer, mode):
    script(*TINY, "--memory-child", peer, mode)
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["peer"] == peer and result["mode"] == mode
    assert result["before"] > 0 and result["extra"] >= 0
