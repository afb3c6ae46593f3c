import runpy
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

TOOL = Path(__file__).parents[2] / "tools" / "extract_features.py"


def test_feature_picture_of_a_photo_without_numpy_warnings(tmp_path, monkeypatch, capsys):
    photo = tmp_path / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), np.uint8)).save(photo)
    out = tmp_path / "pca.png"
    argv = ["extract_features.py", str(photo), "--size", "56", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runpy.run_path(str(TOOL), run_name="__main__")
    assert not [w for w in caught if "not writable" in str(w.message)]
    assert out.is_file() and "patch map (1, 384, 4, 6)" in capsys.readouterr().out
