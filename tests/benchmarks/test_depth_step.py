"""benchmarks/depth_step.py still runs: a smoke run at a tiny size (the numbers mean nothing)."""


def test_depth_step_benchmark_runs_at_a_tiny_size(run_benchmark, capsys):
    args = ["--size", "28", "42", "--batch", "1", "--repeats", "1", "--threads", "1", "--tiny"]
    run_benchmark("depth_step.py", *args)
    out = capsys.readouterr().out
    for peer in ("forward", "lin1-frozen", "lin1-upsampled", "lin4-frozen", "lin1-tuned"):
        assert f"\n{peer} " in out, out
    assert "lin1-frozen / forward" in out
