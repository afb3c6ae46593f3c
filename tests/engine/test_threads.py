"""The thread and loader-worker rule of engine/launch.py, and that the tools apply it."""

import argparse
import importlib.util
import os

import pytest
import torch

from dinoreg_dense.engine import launch
from dinoreg_dense.engine.launch import (
    apply_num_threads,
    default_num_threads,
    runner_config,
    usable_cores,
)

from ..integration.conftest import REPO

ADE20K = str(REPO / "configs" / "ade20k_linear_vits_reg.py")


@pytest.fixture
def cpu_machine(monkeypatch):
    """A CPU-only machine whose core count the test sets; no thread variables in the env."""
    for name in ("OMP_NUM_THREADS", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def with_cores(count: int) -> None:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(count)))

    return with_cores


@pytest.mark.parametrize(
    ("cores", "workers", "threads"),
    [(1, 0, 1), (1, 2, 1), (2, 0, 1), (2, 2, 1), (4, 1, 2), (4, 2, 1), (16, 0, 15), (16, 2, 13)],
)
def test_threads_leave_the_workers_and_one_core(cpu_machine, cores, workers, threads):
    cpu_machine(cores)
    assert default_num_threads(num_workers=workers) == threads


def test_omp_num_threads_wins_and_is_checked(cpu_machine, monkeypatch):
    cpu_machine(16)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_num_threads(num_workers=2) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "two")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS='two'"):
        default_num_threads()


def test_torchrun_processes_share_the_cores(cpu_machine, monkeypatch):
    cpu_machine(16)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert usable_cores() == 4
    assert default_num_threads() == 3


def test_apply_sets_torch_threads_on_cpu_and_keeps_them_with_cuda(cpu_machine, monkeypatch):
    cpu_machine(16)
    assert apply_num_threads(num_workers=2) == torch.get_num_threads() == 13
    assert apply_num_threads(3) == torch.get_num_threads() == 3
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    torch.set_num_threads(5)
    assert apply_num_threads(num_workers=2) == torch.get_num_threads() == 5
    with pytest.raises(ValueError, match="--threads 0"):
        apply_num_threads(0)


def runner_args(threads: int | None = None, cfg_options: dict | None = None):
    return argparse.Namespace(
        config=ADE20K,
        cfg_options=cfg_options,
        data_root=None,
        work_dir=None,
        launcher="none",
        local_rank=0,
        threads=threads,
    )


def workers(cfg) -> list[int]:
    return [cfg[name].num_workers for name in launch.LOADERS]


def test_runner_config_caps_workers_on_two_cores(cpu_machine, capsys):
    cpu_machine(2)
    cfg = runner_config(runner_args())
    assert torch.get_num_threads() == 1
    assert workers(cfg) == [1, 1, 1]  # the config's 2 would oversubscribe 2 cores
    assert "num_workers capped: train_dataloader 2 -> 1" in capsys.readouterr().err


def test_runner_config_all_cores_for_threads_loads_in_the_main_process(cpu_machine):
    cpu_machine(2)
    cfg = runner_config(runner_args(threads=2))
    assert torch.get_num_threads() == 2
    assert workers(cfg) == [0, 0, 0]
    assert not cfg.train_dataloader.persistent_workers  # torch refuses it without workers


def test_runner_config_keeps_workers_given_on_the_command_line(cpu_machine):
    cpu_machine(2)
    cfg = runner_config(runner_args(cfg_options={"train_dataloader.num_workers": 2}))
    assert workers(cfg) == [2, 1, 1]


def test_runner_config_keeps_workers_where_cores_suffice(cpu_machine):
    cpu_machine(16)
    cfg = runner_config(runner_args())
    assert torch.get_num_threads() == 13
    assert workers(cfg) == [2, 2, 2]


def test_train_tool_applies_the_rule(cpu_machine, monkeypatch):
    """tools/train.py parses --threads and has set the threads before the runner is built."""
    spec = importlib.util.spec_from_file_location("train_tool", REPO / "tools" / "train.py")
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    seen = {}

    class Runner:
        def train(self) -> None:
            seen["threads"] = torch.get_num_threads()

    def build(cfg):
        seen["workers"] = cfg.train_dataloader.num_workers
        return Runner()

    monkeypatch.setattr(train.RUNNERS, "build", build)
    cpu_machine(2)
    monkeypatch.setattr("sys.argv", ["train.py", ADE20K])
    train.main()
    assert seen == {"threads": 1, "workers": 1}
    monkeypatch.setattr("sys.argv", ["train.py", ADE20K, "--threads", "2"])
    train.main()
    assert seen == {"threads": 2, "workers": 0}
