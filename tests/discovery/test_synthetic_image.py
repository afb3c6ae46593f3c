"""LOST and TokenCut find a bright object on a dark noisy image, through a real backbone
forward: a one-block RegisterViT whose weights are set so that each patch's key says whether
the patch is mostly object."""

import pytest
import torch

from dinoreg_dense.backbones import RegisterViT
from dinoreg_dense.discovery import box_iou, discovery_features, lost, lost_batch, tokencut


def brightness_backbone(arch: str, **overrides) -> RegisterViT:
    """Embedding channel 0 = mean brightness s of the patch, channel 1 = 1 - s, no position
    embedding; block 0's keys (head 0, channel 0) = LayerNorm(x)[0] - LayerNorm(x)[1], which has
    the sign of s - 1/2. Every other weight is zero; cls and registers are large random tokens."""
    model = RegisterViT(arch, embed_dim=8, depth=1, num_heads=2, pos_embed_grid=4, **overrides)
    p, dim = model.patch_size, model.embed_dim
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        for param in (model.cls_token, model.register_tokens):
            if param is not None:
                param.normal_(std=10.0)
        model.patch_embed.weight[0] = 1.0 / (3 * p * p)
        model.patch_embed.weight[1] = -1.0 / (3 * p * p)
        model.patch_embed.bias[1] = 1.0
        block = model.blocks[0]
        block.norm1.weight.fill_(1.0)
        block.attn.qkv.weight[dim, 0] = 1.0  # key channel 0 of head 0
        block.attn.qkv.weight[dim, 1] = -1.0
    return model.eval()


def picture(height: int, width: int, box: tuple[int, int, int, int], seed: int) -> torch.Tensor:
    """(3, H, W): 0 + noise, 1 + noise inside ``box`` (x0, y0, x1, y1 pixels)."""
    generator = torch.Generator().manual_seed(seed)
    image = 0.1 * torch.randn(3, height, width, generator=generator)
    x0, y0, x1, y1 = box
    image[:, y0:y1, x0:x1] += 1.0
    return image


# arch, overrides, image (H, W), object box: not multiples of the patch size, one touching the
# bottom-right corner of the image (so the box is clipped).
CASES = [
    ("vits14_reg4", dict(), (150, 200), (60, 40, 150, 100)),
    ("vits14_reg4", dict(registers_before_cls=True), (150, 200), (10, 70, 90, 140)),
    ("vitm16_reg4_rms_nocls", dict(), (130, 170), (100, 70, 170, 130)),
]


@pytest.mark.parametrize("arch, overrides, image_size, box", CASES)
def test_lost_and_tokencut_find_the_object(arch, overrides, image_size, box):
    model = brightness_backbone(arch, **overrides)
    images = torch.stack([picture(*image_size, box, seed) for seed in range(2)])
    with torch.no_grad():
        out = model.forward_intermediates(images, return_attention=True)
    features = discovery_features(out.attention, "k")
    truth = torch.tensor([box], dtype=torch.float32)
    found = [lost(item, model.patch_size, image_size) for item in features]
    found += lost_batch(features, model.patch_size, [image_size] * 2)
    found += [tokencut(item, model.patch_size, image_size) for item in features]
    for discovery in found:
        assert box_iou(discovery.box[None], truth).item() >= 0.5, discovery.box
        assert discovery.box[2] <= image_size[1] and discovery.box[3] <= image_size[0]
