"""Mask2Former's masked-attention transformer decoder: shapes, deep supervision, gradients,
registry build, the attention-mask rule by hand, the sine position embedding and parity with
Hugging Face's ``Mask2FormerMaskedAttentionDecoder`` (+ class / mask heads) on copied weights."""

import pytest
import torch
from torch import Tensor, nn

from dinoreg_dense.heads.mask2former import (
    MaskedAttentionDecoder,
    attention_mask_from_masks,
    sine_position_embedding,
)
from dinoreg_dense.registry import MODELS

# Coarsest first, odd and non-square, all different: a transposed map, a wrong level in the
# round-robin or a resize to the wrong level cannot go unseen.
LEVEL_SHAPES = [(3, 5), (5, 9), (9, 17)]
MASK_SHAPE = (17, 33)
SMALL = dict(
    num_classes=5,
    in_channels=24,
    hidden_dim=32,
    num_queries=7,
    num_heads=4,
    dim_feedforward=48,
    num_layers=4,
    mask_dim=16,
)


def random_inputs(
    batch: int = 2, in_channels: int = 24, mask_dim: int = 16, seed: int = 0
) -> tuple[list[Tensor], Tensor]:
    """(multi-scale features coarsest first, mask features)."""
    generator = torch.Generator().manual_seed(seed)
    features = [torch.randn(batch, in_channels, h, w, generator=generator) for h, w in LEVEL_SHAPES]
    mask_features = torch.randn(batch, mask_dim, *MASK_SHAPE, generator=generator)
    return features, mask_features


def test_output_shapes_and_deep_supervision() -> None:
    torch.manual_seed(0)
    decoder = MaskedAttentionDecoder(**SMALL)
    out = decoder(*random_inputs())
    assert out["pred_logits"].shape == (2, 7, 6)
    assert out["pred_masks"].shape == (2, 7, *MASK_SHAPE)
    assert len(out["aux_outputs"]) == SMALL["num_layers"]
    for aux in out["aux_outputs"]:
        assert aux["pred_logits"].shape == (2, 7, 6)
        assert aux["pred_masks"].shape == (2, 7, *MASK_SHAPE)
    # The first auxiliary prediction comes from the learnable queries alone: equal for every image.
    first = out["aux_outputs"][0]["pred_logits"]
    torch.testing.assert_close(first[0], first[1])


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    decoder = MaskedAttentionDecoder(**SMALL)
    out = decoder(*random_inputs())
    loss = out["pred_logits"].square().mean() + out["pred_masks"].square().mean()
    loss = loss + sum(a["pred_logits"].mean() + a["pred_masks"].mean() for a in out["aux_outputs"])
    loss.backward()
    missing = [n for n, p in decoder.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_layer_i_reads_level_i_modulo_levels(num_layers: int) -> None:
    """Layers 0, 1, 2 read levels 0, 1, 2 (coarsest first): changing a level changes the
    output exactly when some layer reads it."""
    torch.manual_seed(0)
    decoder = MaskedAttentionDecoder(**{**SMALL, "num_layers": num_layers}).eval()
    features, mask_features = random_inputs()
    with torch.no_grad():
        reference = decoder(features, mask_features)["pred_masks"]
        for level in range(3):
            changed = [f + 1.0 if i == level else f for i, f in enumerate(features)]
            differs = not torch.equal(decoder(changed, mask_features)["pred_masks"], reference)
            assert differs == (level < num_layers), level


def test_identity_projection_when_channels_match() -> None:
    decoder = MaskedAttentionDecoder(num_classes=3, in_channels=32, hidden_dim=32, num_layers=1)
    assert all(isinstance(p, nn.Identity) for p in decoder.input_proj)
    forced = MaskedAttentionDecoder(
        num_classes=3, in_channels=32, hidden_dim=32, num_layers=1, enforce_input_projection=True
    )
    assert all(isinstance(p, nn.Conv2d) for p in forced.input_proj)


def test_wrong_number_of_levels_raises() -> None:
    decoder = MaskedAttentionDecoder(**SMALL)
    features, mask_features = random_inputs()
    with pytest.raises(ValueError, match="3 feature levels"):
        decoder(features[:2], mask_features)


def test_models_build() -> None:
    decoder = MODELS.build(dict(type="MaskedAttentionDecoder", **SMALL))
    assert isinstance(decoder, MaskedAttentionDecoder)
    assert len(decoder.layers) == SMALL["num_layers"]


def test_attention_mask_by_hand() -> None:
    # Batch 2, 3 queries on a 2 x 2 map resized to itself (bilinear at equal size is the identity).
    logits = torch.tensor(
        [
            [
                [[1.0, -1.0], [-2.0, 3.0]],  # positions 0 and 3 visible
                [[-1.0, -1.0], [-1.0, -1.0]],  # everything below 0.5: attends everywhere
                [[2.0, 2.0], [2.0, 2.0]],  # everything visible
            ],
            [
                [[-1.0, 1.0], [-1.0, -1.0]],  # position 1 visible
                [[-5.0, -5.0], [-5.0, -5.0]],  # all masked -> unmasked
                [[-1.0, -1.0], [-1.0, 0.5]],  # position 3 visible
            ],
        ]
    )
    expected = torch.tensor(
        [
            [[False, True, True, False], [False] * 4, [False] * 4],
            [[True, False, True, True], [False] * 4, [True, True, True, False]],
        ]
    )
    mask = attention_mask_from_masks(logits, (2, 2), num_heads=3)
    assert mask.dtype == torch.bool
    assert mask.shape == (6, 3, 4)
    # Batch-major repetition over heads, as nn.MultiheadAttention reads (B * heads, Q, S).
    torch.testing.assert_close(mask, expected.repeat_interleave(3, dim=0))


def test_attention_mask_resizes() -> None:
    logits = torch.full((1, 2, 6, 10), -3.0)
    logits[0, 0, :3, :5] = 3.0  # top-left quarter of query 0
    mask = attention_mask_from_masks(logits, (3, 5), num_heads=2)
    assert mask.shape == (2, 2, 15)
    visible = ~mask[0, 0].view(3, 5)
    # Bilinear resize halves the map: the top-left rows / columns stay visible, the far ones not.
    assert visible[0, 0] and visible[0, 1] and not visible[2, 4] and not visible[2, 0]
    assert not mask[0, 1].any()  # query 1 masked everywhere -> attends everywhere


def test_masked_positions_get_zero_attention_weight() -> None:
    torch.manual_seed(0)
    batch, queries, heads, dim, shape = 2, 5, 4, 16, (3, 4)
    attention = nn.MultiheadAttention(dim, heads, batch_first=True)
    logits = torch.randn(batch, queries, 6, 8)
    logits[0, 2] = -1.0  # a query masked everywhere
    mask = attention_mask_from_masks(logits, shape, heads)
    _, weights = attention(
        torch.randn(batch, queries, dim),
        torch.randn(batch, 12, dim),
        torch.randn(batch, 12, dim),
        attn_mask=mask,
        average_attn_weights=False,
    )  # weights (B, heads, Q, S)
    forbidden = mask.view(batch, heads, queries, 12)
    assert forbidden.any() and (~forbidden).any()
    assert (weights[forbidden] == 0).all()
    assert (weights[~forbidden] > 0).all()
    assert (weights[0, :, 2] > 0).all()  # the fully masked query reads every position
    torch.testing.assert_close(weights.sum(-1), torch.ones(batch, heads, queries))


def test_sine_position_embedding_by_hand() -> None:
    pos = sine_position_embedding(2, 3, num_pos_feats=4, temperature=100.0, scale=1.0)
    assert pos.shape == (8, 2, 3)
    y, x = 2 / (2 + 1e-6), 1 / (3 + 1e-6)  # row 1 (of 2), column 0 (of 3), normalised
    expected_y = torch.tensor([y, y, y / 10, y / 10])
    expected_x = torch.tensor([x, x, x / 10, x / 10])
    sin_cos = torch.tensor([0, 1, 0, 1]).bool()
    expected = torch.cat(
        [
            torch.where(sin_cos, expected_y.cos(), expected_y.sin()),
            torch.where(sin_cos, expected_x.cos(), expected_x.sin()),
        ]
    )
    torch.testing.assert_close(pos[:, 1, 0], expected)


def hf_modeling():
    """HF's Mask2Former modelling module, imported only when a test needs it."""
    return pytest.importorskip("transformers.models.mask2former.modeling_mask2former")


def hf_to_ours(hf_state: dict[str, Tensor], num_layers: int) -> dict[str, Tensor]:
    """Rename HF's ``Mask2FormerTransformerModule`` (+ ``class_predictor.*``) weights to ours.

    HF's self-attention has separate q / k / v projections; ``nn.MultiheadAttention`` packs them.
    """
    ours = {
        "query_feat.weight": hf_state["queries_features.weight"],
        "query_embed.weight": hf_state["queries_embedder.weight"],
        "level_embed.weight": hf_state["level_embed.weight"],
        "decoder_norm.weight": hf_state["decoder.layernorm.weight"],
        "decoder_norm.bias": hf_state["decoder.layernorm.bias"],
        "class_embed.weight": hf_state["class_predictor.weight"],
        "class_embed.bias": hf_state["class_predictor.bias"],
    }
    for key, value in hf_state.items():
        if key.startswith("input_projections."):
            ours[key.replace("input_projections.", "input_proj.")] = value
    for index in range(3):
        prefix = f"decoder.mask_predictor.mask_embedder.{index}.0."
        for name in ("weight", "bias"):
            ours[f"mask_embed.layers.{index}.{name}"] = hf_state[prefix + name]
    renames = {
        "cross_attn.in_proj_weight": "cross_attn.in_proj_weight",
        "cross_attn.in_proj_bias": "cross_attn.in_proj_bias",
        "cross_attn.out_proj.weight": "cross_attn.out_proj.weight",
        "cross_attn.out_proj.bias": "cross_attn.out_proj.bias",
        "cross_attn_norm.weight": "cross_attn_layer_norm.weight",
        "cross_attn_norm.bias": "cross_attn_layer_norm.bias",
        "self_attn.out_proj.weight": "self_attn.out_proj.weight",
        "self_attn.out_proj.bias": "self_attn.out_proj.bias",
        "self_attn_norm.weight": "self_attn_layer_norm.weight",
        "self_attn_norm.bias": "self_attn_layer_norm.bias",
        "linear1.weight": "fc1.weight",
        "linear1.bias": "fc1.bias",
        "linear2.weight": "fc2.weight",
        "linear2.bias": "fc2.bias",
        "ffn_norm.weight": "final_layer_norm.weight",
        "ffn_norm.bias": "final_layer_norm.bias",
    }
    for layer in range(num_layers):
        hf = f"decoder.layers.{layer}."
        for our_name, hf_name in renames.items():
            ours[f"layers.{layer}.{our_name}"] = hf_state[hf + hf_name]
        for kind in ("weight", "bias"):
            ours[f"layers.{layer}.self_attn.in_proj_{kind}"] = torch.cat(
                [hf_state[f"{hf}self_attn.{p}_proj.{kind}"] for p in ("q", "k", "v")]
            )
    return ours


@pytest.mark.parametrize("pre_norm", [False, True])
def test_parity_with_hugging_face(pre_norm: bool) -> None:
    modeling = hf_modeling()
    from transformers import Mask2FormerConfig

    num_layers = 5  # more than one round over the three levels
    config = Mask2FormerConfig(
        hidden_dim=32,
        mask_feature_size=16,
        num_attention_heads=4,
        dim_feedforward=48,
        decoder_layers=num_layers + 1,  # HF counts the prediction from the initial queries
        num_queries=7,
        num_labels=5,
        dropout=0.0,
        pre_norm=pre_norm,
    )
    torch.manual_seed(0)
    hf_module = modeling.Mask2FormerTransformerModule(in_features=24, config=config).eval()
    class_predictor = nn.Linear(32, 6)
    with torch.no_grad():  # HF's own init leaves LayerNorms at (1, 0); perturb them too.
        for parameter in list(hf_module.parameters()) + list(class_predictor.parameters()):
            parameter.copy_(0.3 * torch.randn_like(parameter))
    hf_state = dict(hf_module.state_dict())
    hf_state.update({f"class_predictor.{k}": v for k, v in class_predictor.state_dict().items()})

    ours = MaskedAttentionDecoder(**{**SMALL, "num_layers": num_layers, "pre_norm": pre_norm})
    ours.load_state_dict(hf_to_ours(hf_state, num_layers), strict=True)
    # float64: the two must agree to rounding, so any difference in the algorithm shows.
    for module in (hf_module, class_predictor, ours):
        module.double().eval()

    features, mask_features = random_inputs()
    features, mask_features = [f.double() for f in features], mask_features.double()
    with torch.no_grad():
        hf_out = hf_module(features, mask_features)
        out = ours(features, mask_features)
    hf_masks = hf_out.masks_queries_logits
    hf_logits = [class_predictor(h.transpose(0, 1)) for h in hf_out.intermediate_hidden_states]
    assert len(hf_masks) == len(out["aux_outputs"]) + 1
    ours_all = out["aux_outputs"] + [
        dict(pred_logits=out["pred_logits"], pred_masks=out["pred_masks"])
    ]
    for ours_step, hf_mask, hf_logit in zip(ours_all, hf_masks, hf_logits, strict=True):
        torch.testing.assert_close(ours_step["pred_masks"], hf_mask, atol=1e-10, rtol=1e-10)
        torch.testing.assert_close(ours_step["pred_logits"], hf_logit, atol=1e-10, rtol=1e-10)
