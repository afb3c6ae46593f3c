"""The README's first command: tools/demo.py trains and evaluates segmentation, then depth."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).parents[2]


def scores(out: str, state: str, metric: str) -> list[float]:
    """The value of ``metric`` on every ``[demo] <state>:`` line, in order."""
    return [float(v) for v in re.findall(rf"\] {state}: +.*?{metric} (\d+\.\d+)", out)]


def assert_pictures(folder: Path, count: int, image_width: int) -> None:
    """``count`` PNGs in ``folder``, each image | prediction | ground truth side by side."""
    pictures = sorted(folder.glob("*.png"))
    assert len(pictures) == count
    for path in pictures:
        with Image.open(path) as picture:
            pixels = np.asarray(picture.convert("RGB"))
        assert picture.format == "PNG" and pixels.shape[1] >= 3 * image_width
        assert pixels.std() > 10  # not blank


def test_the_readme_demo_runs_end_to_end_and_says_what_it_did(tmp_path):
    # short runs (the defaults are 300 and 20 iterations); runs of at most 20 once failed in the
    # scheduler
    args = ["--work-dir", str(tmp_path), "--iters", "6", "--depth-iters", "10"]
    result = subprocess.run(
        [sys.executable, "tools/demo.py", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "RANDOM weights" in out
    [before], [after] = scores(out, "untrained", "mIoU"), scores(out, "trained", "mIoU")
    assert after > before
    assert "train:" in result.stderr  # the progress bar
    assert_pictures(tmp_path / "overlays", 16, image_width=128)
    assert (tmp_path / "iter_6.pth").is_file()

    [before], [after] = scores(out, "untrained", "abs_rel"), scores(out, "trained", "abs_rel")
    [d1_before], [d1_after] = scores(out, "untrained", "d1"), scores(out, "trained", "d1")
    assert after < 0.95 * before and d1_after > d1_before, out
    assert_pictures(tmp_path / "depth_pictures", 16, image_width=128)
    assert (tmp_path / "depth" / "iter_10.pth").is_file()
