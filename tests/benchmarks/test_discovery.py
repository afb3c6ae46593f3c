"""benchmarks/discovery.py still runs: a smoke run at a tiny size (the numbers mean nothing)."""


def test_discovery_benchmark_runs_at_a_tiny_size(run_benchmark, capsys):
    args = ["--grids", "8", "--size", "56", "--batches", "1", "--repeats", "1", "--tiny"]
    run_benchmark("discovery.py", *args, "--threads", "1")
    out = capsys.readouterr().out
    for line in ("\n  ours ", "\n  numpy ", "\n  backbone ", "\n  discovery ", "numpy / ours"):
        assert line in out, out
    assert "discovery rate / backbone rate" in out
