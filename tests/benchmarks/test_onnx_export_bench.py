"""benchmarks/onnx_export.py still runs: a smoke run at a tiny size (the numbers mean nothing)."""


def test_onnx_benchmark_runs_at_a_tiny_size(run_benchmark, capsys):
    args = ["--tiny", "--fixed", "--size", "28", "--repeats", "1", "--threads", "1"]
    run_benchmark("onnx_export.py", *args)
    out = capsys.readouterr().out
    for line in ("\n  torch ", "\n  onnxruntime ", "torch / onnxruntime"):
        assert line in out, out
    diff = float(out.split("max abs diff ")[1].split(",")[0])
    assert diff < 1e-4
