import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[2]


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bad_input_is_one_error_line_not_a_traceback():
    args = (
        "tools/train.py",
        "configs/toy_linear_vittiny.py",
        "--cfg-options",
        "train_cfg.max_iter=3",
    )
    result = run(*args)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "error: --cfg-options train_cfg.max_iter:" in result.stderr
    assert "did you mean 'max_iters'" in result.stderr
    # for bug reports, the traceback is one variable away
    assert "Traceback" in run(*args, DINOREG_TRACEBACK="1").stderr
