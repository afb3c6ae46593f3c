"""ViTDet's simple feature pyramid: a multi-scale neck on a plain ViT's single-stride patch maps.

Source: Li, Mao, Girshick and He, "Exploring Plain Vision Transformer Backbones for Object
Detection" (ECCV 2022, arXiv 2203.16527), section 3 "Simple feature pyramid" and figure 2: from
the last stride-16 map alone, transposed convolutions build strides 4 and 8, the map itself is
stride 16 and a max-pool gives stride 32; each level then gets a 1x1 and a 3x3 convolution, each
followed by a channel LayerNorm (detectron2's ``SimpleFeaturePyramid``, ``norm="LN"``).

Strides for any patch size p: the levels are defined by scale factors relative to the patch grid,
not by absolute strides, so a level with scale s has stride p / s pixels. ViTDet's factors
(4, 2, 1, 0.5) give strides 4, 8, 16, 32 for p = 16, 3.5, 7, 14, 28 for p = 14 (DINOv2) and
2, 4, 8, 16 for p = 8. We keep the non-integer strides of p = 14 rather than resample to exact
multiples of 4: every level stays an exact, aligned re-tiling of the patch grid (a level cell is
a whole number of patch cells or a whole fraction of one), no interpolation blurs the features,
and the consumers do not need integer strides (deformable attention samples in normalised
coordinates, and masks are resized to the input anyway). Other powers of two are allowed, e.g.
(2, 1, 0.5, 0.25) gives strides 4, 8, 16, 32 for p = 8.
"""

import math
from collections.abc import Sequence

from torch import Tensor, nn

from ..backbones import ViTFeatures
from ..registry import MODELS


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of each position of a (B, C, H, W) map.

    The same normalisation as detectron2's channel-first ``LayerNorm`` and ConvNeXt's
    ``LayerNorm2d``, computed channels-last with ``nn.LayerNorm``.
    """

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _scale_exponent(scale: float) -> int:
    """k with scale = 2**k, or a ValueError naming the allowed values."""
    exponent = round(math.log2(scale)) if scale > 0 else None
    if exponent is None or 2.0**exponent != scale:
        raise ValueError(f"scale_factors must be powers of two (ViTDet: 4, 2, 1, 0.5), got {scale}")
    return exponent


def _resample(in_channels: int, exponent: int) -> tuple[nn.Module, int]:
    """The block taking the patch grid to scale 2**exponent, and its output channels.

    Up by 2 per transposed conv (k=2, s=2), halving the channels, with LayerNorm + GELU between
    two of them (ViTDet's x4); down by a max-pool whose ceil mode keeps the last row and column
    of an odd grid, so every patch reaches every level (like DPT's stride-2 conv).
    """
    if exponent == 0:
        return nn.Identity(), in_channels
    if exponent < 0:
        size = 2**-exponent
        return nn.MaxPool2d(kernel_size=size, stride=size, ceil_mode=True), in_channels
    if in_channels % 2**exponent:
        raise ValueError(
            f"upsampling by {2**exponent} halves in_channels={in_channels} {exponent} times"
        )
    layers: list[nn.Module] = []
    channels = in_channels
    for step in range(exponent):
        if step > 0:
            layers += [LayerNorm2d(channels), nn.GELU()]
        layers.append(nn.ConvTranspose2d(channels, channels // 2, kernel_size=2, stride=2))
        channels //= 2
    return nn.Sequential(*layers), channels


@MODELS.register_module()
class SimpleFeaturePyramid(nn.Module):
    """Multi-scale maps from a ViT's single-stride patch maps (ViTDet's simple feature pyramid).

    Args:
        in_channels: the backbone width D.
        out_channels: channels of every output level (ViTDet 256).
        scale_factors: one per level, relative to the patch grid, each a power of two (ViTDet
            (4, 2, 1, 0.5)); level l has stride ``patch_size / scale_factors[l]`` pixels (see
            :meth:`strides` and the module docstring for p = 14).
        in_index: which of ``ViTFeatures.patch_maps`` feeds the levels: one index for all of
            them (ViTDet: the last map, -1), or one per level, shallow layers usually feeding the
            fine levels (as ``in_index`` of the DPT head).

    Shapes: ``forward`` takes patch maps (B, D, h, w) and returns one (B, out_channels, H_l, W_l)
    map per level, (H_l, W_l) = (h s, w s) for s >= 1 and (ceil(h s), ceil(w s)) for s < 1.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 256,
        scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
        in_index: int | Sequence[int] = -1,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.scale_factors = [float(s) for s in scale_factors]
        if isinstance(in_index, int):
            self.in_index = [in_index] * len(self.scale_factors)
        else:
            self.in_index = list(in_index)
        if len(self.in_index) != len(self.scale_factors):
            raise ValueError(
                f"in_index {self.in_index} needs one entry per scale factor "
                f"{self.scale_factors}, or a single index"
            )
        self.resamples = nn.ModuleList()
        self.lateral_convs = nn.ModuleList()
        self.output_convs = nn.ModuleList()
        for scale in self.scale_factors:
            resample, channels = _resample(in_channels, _scale_exponent(scale))
            self.resamples.append(resample)
            # Bias-free convs: the LayerNorm right after each has its own shift (as ViTDet).
            self.lateral_convs.append(
                nn.Sequential(
                    nn.Conv2d(channels, out_channels, 1, bias=False), LayerNorm2d(out_channels)
                )
            )
            self.output_convs.append(
                nn.Sequential(
                    nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                    LayerNorm2d(out_channels),
                )
            )

    def strides(self, patch_size: int) -> list[float]:
        """Stride of each level in input pixels, ``patch_size / scale`` (p = 14: 3.5 ... 28)."""
        return [patch_size / scale for scale in self.scale_factors]

    def forward(self, features: ViTFeatures) -> list[Tensor]:
        """Backbone features -> one (B, out_channels, H_l, W_l) map per level, finest first."""
        return [
            output(lateral(resample(features.patch_maps[index])))
            for index, resample, lateral, output in zip(
                self.in_index,
                self.resamples,
                self.lateral_convs,
                self.output_convs,
                strict=True,
            )
        ]
