"""Shared by the benchmark smoke tests: the scripts under benchmarks/, loaded or run in-process
(no second torch import)."""

import logging
import runpy
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


@pytest.fixture
def benchmarks_dir(monkeypatch: pytest.MonkeyPatch) -> Path:
    """benchmarks/, put on ``sys.path`` for this test: the scripts import their `timing` (and
    `backbone_peers`) modules from there."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return BENCHMARKS


@pytest.fixture
def run_benchmark(
    benchmarks_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., None]]:
    """``run(name, *args)`` runs ``benchmarks/<name>`` as ``__main__`` with ``args`` as its command
    line. The scripts silence the ViT's random-init warning; its logger level is restored after."""
    vit_logger = logging.getLogger("dinoreg_dense.backbones.vit")
    level = vit_logger.level

    def run(name: str, *args: str) -> None:
        script = benchmarks_dir / name
        monkeypatch.setattr(sys, "argv", [str(script), *args])
        runpy.run_path(str(script), run_name="__main__")

    yield run
    vit_logger.setLevel(level)
