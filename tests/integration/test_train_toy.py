"""End to end on the toy dataset: training improves mIoU, killed runs resume exactly,
2-process evaluation equals 1-process evaluation."""

import ast
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from dinoreg_dense.engine import load_run_checkpoint
from dinoreg_dense.registry import RUNNERS

from .conftest import REPO, write_config

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def run_tool(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout
    )


def test_training_raises_miou_well_above_the_untrained_model(tmp_path, toy_root):
    cfg = Config.fromfile(
        write_config(tmp_path, toy_root, iters=60, val_interval=60, ckpt_interval=60)
    )
    cfg.work_dir = str(tmp_path / "work")
    cfg.log_level = "WARNING"
    runner = RUNNERS.build(cfg)
    before = runner.val()["mIoU"]
    runner.train()
    after = runner.val()["mIoU"]
    assert after > before + 20, (before, after)
    assert after > 35, after

    # the trained checkpoint drives tools/test.py (metrics, label PNGs, overlays) and infer.py
    checkpoint = str(tmp_path / "work" / "iter_60.pth")
    config = str(tmp_path / "tiny_60.py")
    out, show = tmp_path / "pred", tmp_path / "show"
    tested = run_tool(
        "tools/test.py",
        config,
        checkpoint,
        "--out",
        str(out),
        "--show-dir",
        str(show),
        "--work-dir",
        str(tmp_path / "test"),
    )
    assert tested.returncode == 0, tested.stderr[-3000:]
    printed = ast.literal_eval(tested.stdout.strip().splitlines()[-1])
    assert printed["mIoU"] == pytest.approx(after, abs=0.006)
    assert len(list(out.glob("*.png"))) == len(list(show.glob("*.png"))) == 8
    images = toy_root / "ADEChallengeData2016" / "images" / "validation"
    inferred = run_tool("tools/infer.py", config, checkpoint, str(images), "--out-dir", str(out))
    assert inferred.returncode == 0, inferred.stderr[-3000:]
    # infer.py's whole-image prediction equals the test loop's for the same file
    for stem in ("ADE_val_00000001", "ADE_val_00000002"):
        a = np.asarray(Image.open(out / f"{stem}.png"))
        b = np.asarray(Image.open(out / f"{stem}_pred.png"))
        assert np.array_equal(a, b), stem
    assert (out / "ADE_val_00000001_overlay.png").exists()


def final_weights(work_dir: Path, iters: int) -> dict[str, torch.Tensor]:
    return load_run_checkpoint(work_dir / f"iter_{iters}.pth")["state_dict"]


def test_killed_run_resumes_to_the_same_weights(tmp_path, toy_root):
    iters = 40
    config = write_config(tmp_path, toy_root, iters=iters, val_interval=10, ckpt_interval=10)
    full = run_tool("tools/train.py", str(config), "--work-dir", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr[-3000:]
    # the console is short: environment, config and hook order go to the log file only
    console = full.stdout + full.stderr
    assert "System environment" not in console and "Config:" not in console
    assert "Hooks will be executed" not in console and len(console.split("\n")) < 100

    work = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "tools/train.py", str(config), "--work-dir", str(work)],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while not (work / "iter_10.pth").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (work / f"iter_{iters}.pth").exists(), "the run ended before it could be killed"

    resumed = run_tool("tools/train.py", str(config), "--work-dir", str(work), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert re.search(r"Resuming from \S+iter_\d+\.pth", resumed.stdout), resumed.stdout[-2000:]
    expected, got = final_weights(tmp_path / "full", iters), final_weights(work, iters)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun with gloo")
def test_two_process_training_and_evaluation(tmp_path, toy_root):
    config = write_config(tmp_path, toy_root, iters=40, val_interval=40, ckpt_interval=40)
    torchrun = ["-m", "torch.distributed.run", "--nproc_per_node", "2"]
    torchrun += ["--master_port", str(29500 + os.getpid() % 1000)]
    train = run_tool(
        *torchrun,
        "tools/train.py",
        str(config),
        "--work-dir",
        str(tmp_path / "ddp"),
        "--launcher",
        "pytorch",
        timeout=300,
    )
    assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-3000:]
    assert "Distributed training: True" in train.stdout + train.stderr
    checkpoint = tmp_path / "ddp" / "iter_40.pth"
    assert checkpoint.exists()
    val_miou = [float(m) for m in re.findall(r"mIoU: (\d+\.\d+)", train.stdout + train.stderr)]
    assert val_miou, train.stdout[-2000:]

    single = run_tool(
        "tools/test.py", str(config), str(checkpoint), "--work-dir", str(tmp_path / "t1")
    )
    assert single.returncode == 0, single.stderr[-3000:]
    double = run_tool(
        *torchrun,
        "tools/test.py",
        str(config),
        str(checkpoint),
        "--launcher",
        "pytorch",
        "--work-dir",
        str(tmp_path / "t2"),
        timeout=300,
    )
    assert double.returncode == 0, double.stdout[-2000:] + double.stderr[-3000:]
    assert "world size 2" in double.stdout + double.stderr

    def metrics(out: str) -> list[str]:
        return re.findall(r"\{'aAcc'[^}]*\}", out)

    assert len(metrics(single.stdout)) == 1
    assert metrics(double.stdout) == metrics(single.stdout)  # printed once, by rank 0
    # the validation run during training evaluated the model that the checkpoint holds
    tested = ast.literal_eval(metrics(single.stdout)[0])["mIoU"]
    assert tested == pytest.approx(val_miou[-1], abs=0.006), (val_miou, tested)
