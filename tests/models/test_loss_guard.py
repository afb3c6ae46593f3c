import pytest
import torch

from dinoreg_dense.models.loss_guard import LossDivergedError, LossGuard


def _feed(guard: LossGuard, values: list[float]) -> None:
    for value in values:
        guard.check(torch.tensor(value), {"loss_ce": torch.tensor(value)})


def test_a_hard_batch_late_in_training_is_not_divergence():
    guard = LossGuard(divergence_factor=10.0)
    _feed(guard, [5.0, 2.0] + [0.05] * 200 + [0.9, 3.0])  # 60x the level, under 10x the start
    assert guard.is_normal()


def test_a_jump_far_above_the_scale_is_divergence_and_nan_is_caught():
    guard = LossGuard(divergence_factor=10.0)
    _feed(guard, [5.0, 4.0])
    with pytest.raises(LossDivergedError, match="diverged: 4.6e\\+06 at step 3"):
        _feed(guard, [4.6e6])
    with pytest.raises(LossDivergedError, match="non-finite training loss nan"):
        _feed(LossGuard(divergence_factor=None), [5.0, float("nan")])
    _feed(LossGuard(divergence_factor=None), [5.0, 1e9])  # None: only NaN / inf stop a run
    with pytest.raises(ValueError, match="must be > 1"):
        LossGuard(divergence_factor=0.5)


def test_a_slowly_rising_loss_marks_later_checkpoints_unsound():
    guard = LossGuard(divergence_factor=10.0)
    _feed(guard, [5.0, 3.0, 2.0])
    assert guard.is_normal()
    _feed(guard, [5.0 * 1.3**k for k in range(8)])
    assert not guard.is_normal()
