import pytest
import torch
import torch.nn.functional as F

from dinoreg_dense.losses import (
    HungarianMatcher,
    SetCriterion,
    average_num_masks,
    dice_loss,
    sigmoid_bce_loss,
)
from dinoreg_dense.registry import MODELS

hf = pytest.importorskip("transformers.models.mask2former.modeling_mask2former")

NUM_CLASSES = 4
WEIGHTS = dict(class_weight=2.0, mask_weight=5.0, dice_weight=3.0)


def make_criterion(num_points=50, **kwargs):
    matcher = HungarianMatcher(
        WEIGHTS["class_weight"], WEIGHTS["mask_weight"], WEIGHTS["dice_weight"], num_points
    )
    return SetCriterion(NUM_CLASSES, matcher, num_points=num_points, **{**WEIGHTS, **kwargs})


def random_batch(seed=0, num_layers=3, labels=((1, 3, 0), (2, 2)), num_queries=6):
    generator = torch.Generator().manual_seed(seed)
    layers = [
        {
            "pred_logits": torch.randn(
                len(labels), num_queries, NUM_CLASSES + 1, generator=generator
            ).requires_grad_(),
            "pred_masks": torch.randn(
                len(labels), num_queries, 8, 8, generator=generator
            ).requires_grad_(),
        }
        for _ in range(num_layers)
    ]
    targets = [
        {
            "labels": torch.tensor(x, dtype=torch.int64),
            "masks": torch.rand(len(x), 16, 16, generator=generator) > 0.5,
        }
        for x in labels
    ]
    return {**layers[-1], "aux_outputs": layers[:-1]}, targets


def hf_losses(outputs, targets, seed, num_points=50, no_object_weight=0.1):
    config = hf.Mask2FormerConfig(
        num_labels=NUM_CLASSES,
        no_object_weight=no_object_weight,
        train_num_points=num_points,
        oversample_ratio=3.0,
        importance_sample_ratio=0.75,
        **WEIGHTS,
    )
    loss = hf.Mask2FormerLoss(config, weight_dict={})
    aux = [
        {"masks_queries_logits": a["pred_masks"], "class_queries_logits": a["pred_logits"]}
        for a in outputs["aux_outputs"]
    ]
    torch.manual_seed(seed)
    raw = loss(
        outputs["pred_masks"],
        outputs["pred_logits"],
        [t["masks"].float() for t in targets],
        [t["labels"] for t in targets],
        aux,
    )
    # HF names the class loss loss_cross_entropy, suffixes _{i} and leaves weights to the caller.
    scale = {"loss_cross_entropy": 2.0, "loss_mask": 5.0, "loss_dice": 3.0}
    ours = {"loss_cross_entropy": "loss_cls", "loss_mask": "loss_mask", "loss_dice": "loss_dice"}
    converted = {}
    for key, value in raw.items():
        name = next(k for k in scale if key.startswith(k))
        suffix = key[len(name) :]
        converted[ours[name] + (f"_d{suffix[1:]}" if suffix else "")] = scale[name] * value
    return converted


def test_losses_equal_hf_mask2former_loss_with_the_same_random_numbers():
    outputs, targets = random_batch()
    losses = make_criterion()(outputs, targets, torch.Generator().manual_seed(3))
    expected = hf_losses(outputs, targets, seed=3)
    assert (
        set(losses)
        == set(expected)
        == {
            f"loss_{name}{suffix}"
            for name in ("cls", "mask", "dice")
            for suffix in ("", "_d0", "_d1")
        }
    )
    for key, value in expected.items():
        torch.testing.assert_close(losses[key], value, msg=key)


def test_no_object_weight_changes_the_class_loss_as_hf():
    outputs, targets = random_batch(num_layers=1)
    losses = make_criterion(no_object_weight=0.5)(
        outputs, targets, torch.Generator().manual_seed(0)
    )
    expected = hf_losses(outputs, targets, seed=0, no_object_weight=0.5)
    torch.testing.assert_close(losses["loss_cls"], expected["loss_cls"])


def test_class_loss_by_hand():
    # One image, three queries, one target of class 1 that query 2 predicts.
    pred_logits = torch.tensor(
        [[[0.0, 0.0, 0.0, 0.0, 3.0], [1.0, 0.0, 0.0, 0.0, 0.0], [0, 4, 0, 0, 0]]]
    )
    pred_logits = pred_logits.float()
    masks = torch.zeros(1, 4, 4, dtype=torch.bool)
    masks[0, :2] = True
    pred_masks = torch.where(masks, 10.0, -10.0)[:, None].repeat(1, 3, 1, 1).float()
    targets = [{"labels": torch.tensor([1]), "masks": masks}]
    criterion = SetCriterion(
        NUM_CLASSES,
        dict(type="HungarianMatcher", num_points=16),
        class_weight=1.0,
        no_object_weight=0.1,
        num_points=16,
    )
    losses = criterion({"pred_logits": pred_logits, "pred_masks": pred_masks}, targets)
    log_probs = pred_logits[0].log_softmax(-1)
    nll = torch.stack([-log_probs[0, 4], -log_probs[1, 4], -log_probs[2, 1]])
    weights = torch.tensor([0.1, 0.1, 1.0])
    torch.testing.assert_close(losses["loss_cls"], (weights * nll).sum() / weights.sum())


def test_perfect_predictions_give_near_zero_mask_and_dice_loss():
    masks = torch.zeros(2, 64, 64, dtype=torch.bool)
    masks[0, 8:40, 12:60] = True
    masks[1, 36:, :24] = True
    pred_masks = torch.full((1, 5, 64, 64), -10.0)
    pred_masks[0, 1] = torch.where(masks[0], 10.0, -10.0)
    pred_masks[0, 3] = torch.where(masks[1], 10.0, -10.0)
    pred_logits = torch.full((1, 5, NUM_CLASSES + 1), -20.0)
    pred_logits[0, :, NUM_CLASSES] = 20.0
    pred_logits[0, 1, 2] = pred_logits[0, 3, 0] = 40.0
    outputs = {"pred_logits": pred_logits, "pred_masks": pred_masks}
    targets = [{"labels": torch.tensor([2, 0]), "masks": masks}]
    uniform = make_criterion(num_points=2000, importance_sample_ratio=0.0)
    losses = uniform(outputs, targets, torch.Generator().manual_seed(0))
    # A point within half a pixel of an edge samples a blend of +-10 logits against a blended
    # label, which no logit fits exactly (bilinear interpolation of logits is not of
    # probabilities): that ~4% of the points keeps the losses small rather than 0. Random
    # logits give ~4 (BCE) and ~2 (dice).
    assert losses["loss_mask"] / WEIGHTS["mask_weight"] < 0.05
    assert losses["loss_dice"] / WEIGHTS["dice_weight"] < 0.02
    assert losses["loss_cls"] < 1e-6
    # Importance sampling puts most of the points on exactly those edges.
    focused = make_criterion(num_points=2000)(outputs, targets, torch.Generator().manual_seed(0))
    assert focused["loss_mask"] > 2 * losses["loss_mask"]


def test_gradients_reach_every_layer_and_deep_supervision_switches_off():
    outputs, targets = random_batch()
    losses = make_criterion()(outputs, targets, torch.Generator())
    sum(losses.values()).backward()
    for layer in [outputs, *outputs["aux_outputs"]]:
        for key in ("pred_logits", "pred_masks"):
            assert layer[key].grad is not None and layer[key].grad.abs().sum() > 0
    shallow = make_criterion(deep_supervision=False)(outputs, targets, torch.Generator())
    assert set(shallow) == {"loss_cls", "loss_mask", "loss_dice"}


def test_batch_without_targets_gives_zero_mask_losses_with_gradient():
    outputs, targets = random_batch(num_layers=1, labels=((), ()))
    losses = make_criterion()(outputs, targets, torch.Generator())
    assert losses["loss_mask"] == losses["loss_dice"] == 0
    sum(losses.values()).backward()
    assert outputs["pred_masks"].grad is not None
    # Every query is "no object": a plain cross-entropy against class K.
    expected = F.cross_entropy(outputs["pred_logits"].detach().flatten(0, 1), torch.full((12,), 4))
    torch.testing.assert_close(losses["loss_cls"], 2.0 * expected)


def test_image_without_targets_next_to_one_with_targets():
    outputs, targets = random_batch(num_layers=1, labels=((), (3, 1)))
    losses = make_criterion()(outputs, targets, torch.Generator().manual_seed(0))
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_mask"] > 0


def test_point_losses_by_hand():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 3.0]])
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.sigmoid(logits)
    bce = -(labels * p.log() + (1 - labels) * (1 - p).log())
    torch.testing.assert_close(sigmoid_bce_loss(logits, labels, 4.0), bce.mean(1).sum() / 4)
    dice = 1 - (2 * (p * labels).sum(1) + 1) / (p.sum(1) + labels.sum(1) + 1)
    torch.testing.assert_close(dice_loss(logits, labels, 4.0), dice.sum() / 4)
    # Two empty masks agree perfectly: the +1 smoothing makes that a zero loss, not 0/0.
    assert dice_loss(torch.full((1, 5), -100.0), torch.zeros(1, 5), 1.0) < 1e-6


def test_num_masks_is_clamped_to_one():
    empty = [{"labels": torch.zeros(0, dtype=torch.int64)}]
    assert average_num_masks(empty, torch.device("cpu")).item() == 1.0
    three = [{"labels": torch.zeros(2, dtype=torch.int64)}, {"labels": torch.zeros(1)}]
    assert average_num_masks(three, torch.device("cpu")).item() == 3.0


def test_builds_from_config_and_rejects_unpadded_targets():
    criterion = MODELS.build(
        dict(
            type="SetCriterion",
            num_classes=NUM_CLASSES,
            matcher=dict(type="HungarianMatcher", num_points=8),
            num_points=8,
            no_object_weight=0.2,
        )
    )
    assert isinstance(criterion.matcher, HungarianMatcher)
    assert criterion.class_weights.tolist() == pytest.approx([1, 1, 1, 1, 0.2])
    outputs, targets = random_batch(num_layers=1)
    targets[1]["masks"] = targets[1]["masks"][:, :12]
    with pytest.raises(ValueError, match="pad them"):
        criterion(outputs, targets)
