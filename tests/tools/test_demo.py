import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[2]


def test_the_readme_demo_runs_end_to_end_and_says_what_it_did(tmp_path):
    # a short run (the default is 300 iterations); runs of at most 20 once failed in the scheduler
    result = subprocess.run(
        [sys.executable, "tools/demo.py", "--work-dir", str(tmp_path), "--iters", "6"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "RANDOM weights" in out
    before = float(re.search(r"untrained: mIoU (\d+\.\d)", out).group(1))
    after = float(re.search(r"\] trained: +mIoU (\d+\.\d)", out).group(1))
    assert after > before
    assert "train:" in result.stderr  # the progress bar
    assert len(list((tmp_path / "overlays").glob("*.png"))) == 16
    assert (tmp_path / "iter_6.pth").is_file()
