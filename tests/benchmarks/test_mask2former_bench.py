"""benchmarks/mask2former.py still runs: a smoke run at a tiny size (the numbers mean nothing)."""

import functools
import json

import pytest

TINY = ["--tiny", "--size", "56", "--repeats", "1", "--threads", "1"]


@pytest.fixture
def script(run_benchmark):
    pytest.importorskip("transformers.models.mask2former.modeling_mask2former")
    return functools.partial(run_benchmark, "mask2former.py")


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
