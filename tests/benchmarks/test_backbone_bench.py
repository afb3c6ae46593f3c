"""benchmarks/backbone.py's peers hold one set of weights: ours, HF (sdpa) and timm agree for both
model families before anything is timed (small images; the timing itself is not run)."""

import runpy

import pytest


@pytest.mark.parametrize("family, size", [("dinov2", 56), ("dinov3", 64)])
def test_backbone_benchmark_peers_agree(benchmarks_dir, family, size):
    script = runpy.run_path(str(benchmarks_dir / "backbone.py"))  # not as __main__: nothing runs
    models = script["build_models"](script["FAMILIES"][family], seed=0)
    numerics = script["check_numerics"](models, [size])
    assert set(numerics) == {
        f"{size}: |ours - ours-plain|",
        f"{size}: |ours - hf-sdpa|",
        f"{size}: |ours - timm|",
        f"{size}: |ours bf16 - ours fp32| (info)",
    }
    for key, value in numerics.items():
        if "(info)" not in key:
            assert value <= script["MAX_ABS_DIFF"], (key, value)
