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


def test_a_checkpoint_of_another_size_names_the_tools_own_flag(tmp_path):
    from dinoreg_dense.checkpoint import save_checkpoint
    from dinoreg_dense.registry import MODELS

    path = tmp_path / "tiny.safetensors"
    save_checkpoint(
        MODELS.build(dict(type="RegisterViT", depth=1, embed_dim=32, num_heads=2)), path
    )
    result = run("tools/extract_features.py", "--checkpoint", str(path), "--arch", "vits14_reg4")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        "does not fit the model" in result.stderr
        and "model.backbone.arch is --arch" in result.stderr
    )
