"""What every dense task model shares: backbone + head, batching, test-time augmentation,
whole / sliding-window inference and the non-finite-loss guard.

A task is a subclass that says how views of one image are merged (``merge_view``) and how the
merged per-pixel output becomes a prediction (``add_prediction``); its head follows the protocol of
:class:`~dinoreg_dense.heads.BaseDenseHead` (``loss(features, data_samples)`` and
``predict(features, batch_img_metas)``), in the spirit of mmsegmentation 1.x's decode heads.
"""

from collections.abc import Sequence
from typing import Any, ClassVar

import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor

from ..backbones import ViTFeatures
from ..registry import MODELS
from ..structures import DenseDataSample
from .config_check import check_options
from .loss_guard import LossGuard
from .sliding_window import slide_inference

TEST_CFG_DEFAULTS: dict[str, Any] = dict(
    mode="whole", crop_size=None, stride=None, flip=False, scales=(1.0,), batch_size=2
)


class DenseModel(BaseModel):
    """Backbone -> head, task-free.

    Args:
        backbone: config of a backbone returning :class:`ViTFeatures` (e.g. ``RegisterViT``).
        decode_head: config of a head following the ``BaseDenseHead`` protocol; an unset
            ``in_channels`` is derived from the backbone's width (``in_channels_for``).
        data_preprocessor: config of the batch preprocessor (``DenseDataPreProcessor``).
        train_cfg: training options, validated: ``divergence_factor`` (default 10; ``None``
            checks only for NaN / inf): a loss this many times above its lowest running level
            stops training before the optimizer step (see :class:`LossGuard`).
        test_cfg: inference options, validated when the model is built: ``mode`` 'whole' or
            'slide'; ``crop_size`` and ``stride`` (h, w) of the sliding windows (``crop_size``
            defaults to the preprocessor's training crop ``size``; DINOv2: 512 and 341); ``flip``
            (also predict the mirrored image); ``scales`` (image scale factors); ``batch_size``
            windows per forward; plus the task's own keys (``extra_test_cfg``).
        init_cfg: MMEngine initialisation config.

    Raises:
        ValueError: an unknown or missing ``test_cfg`` / ``train_cfg`` key, naming the valid ones.
    """

    extra_test_cfg: ClassVar[dict[str, Any]] = {}
    train_cfg_defaults: ClassVar[dict[str, Any]] = dict(divergence_factor=10.0)

    def __init__(
        self,
        backbone: dict,
        decode_head: dict,
        data_preprocessor: dict | None = None,
        train_cfg: dict | None = None,
        test_cfg: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        # Built here: BaseModel would look the type up in MMEngine's root registry.
        preprocessor = MODELS.build(data_preprocessor or dict(type="DenseDataPreProcessor"))
        super().__init__(data_preprocessor=preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.decode_head = MODELS.build(self._fill_in_channels(decode_head))
        self.train_cfg = check_options("model.train_cfg", train_cfg, self.train_cfg_defaults)
        self.test_cfg = self._check_test_cfg(test_cfg)
        self.loss_guard = LossGuard(self.train_cfg["divergence_factor"])

    def _fill_in_channels(self, head: dict) -> dict:
        """The head's config with ``in_channels`` derived from the backbone when unset, so a
        config follows whatever width the checkpoint's architecture has."""
        if head.get("in_channels") is not None:
            return head
        head_cls = MODELS.get(head["type"])
        if not hasattr(head_cls, "in_channels_for"):
            return head
        return dict(head, in_channels=head_cls.in_channels_for(head, self.backbone))

    def _check_test_cfg(self, test_cfg: dict | None) -> dict[str, Any]:
        cfg = check_options(
            "model.test_cfg", test_cfg, {**TEST_CFG_DEFAULTS, **self.extra_test_cfg}
        )
        if cfg["mode"] not in ("whole", "slide"):
            raise ValueError(f"model.test_cfg.mode must be 'whole' or 'slide', got {cfg['mode']!r}")
        if cfg["mode"] == "slide":
            if cfg["crop_size"] is None:
                cfg["crop_size"] = getattr(self.data_preprocessor, "size", None)
            if cfg["crop_size"] is None or cfg["stride"] is None:
                raise ValueError(
                    "model.test_cfg.mode='slide' needs crop_size and stride (h, w) of the "
                    "windows, e.g. test_cfg=dict(mode='slide', crop_size=(512, 512), "
                    "stride=(341, 341)) as in DINOv2; crop_size defaults to "
                    "model.data_preprocessor.size"
                )
        for key in ("crop_size", "stride"):
            cfg[key] = _pair(f"model.test_cfg.{key}", cfg[key])
        if cfg["mode"] == "slide" and any(
            s > c for s, c in zip(cfg["stride"], cfg["crop_size"], strict=True)
        ):
            raise ValueError(
                f"model.test_cfg.stride {cfg['stride']} is larger than the window "
                f"{cfg['crop_size']}: pixels between windows would get no prediction"
            )
        scales = cfg["scales"]
        cfg["scales"] = (scales,) if isinstance(scales, int | float) else tuple(scales)
        if not cfg["scales"] or min(cfg["scales"]) <= 0:
            raise ValueError(f"model.test_cfg.scales must be positive, got {scales}")
        if not isinstance(cfg["batch_size"], int) or cfg["batch_size"] < 1:
            raise ValueError(f"model.test_cfg.batch_size must be >= 1, got {cfg['batch_size']}")
        return cfg

    # ------------------------------------------------------------------ core
    def extract_feat(self, inputs: Tensor) -> ViTFeatures:
        """(B, 3, H, W) normalised images -> backbone features (the backbone pads to its grid)."""
        return self.backbone(inputs)

    def encode(self, inputs: Tensor) -> Tensor:
        """(B, 3, H, W) normalised images -> the head's per-pixel output (B, C, H, W)."""
        metas = [dict(img_shape=tuple(inputs.shape[-2:]))] * inputs.shape[0]
        return self.decode_head.predict(self.extract_feat(inputs), metas)

    def forward(
        self,
        inputs: Tensor,
        data_samples: list[DenseDataSample] | None = None,
        mode: str = "tensor",
    ) -> dict[str, Tensor] | list[DenseDataSample] | Tensor:
        """MMEngine entry point: ``mode`` is 'loss', 'predict' or 'tensor' (raw head output)."""
        if mode == "loss":
            return self.loss(inputs, data_samples)
        if mode == "predict":
            return self.predict(inputs, data_samples)
        if mode == "tensor":
            return self.encode(inputs)
        raise ValueError(f"unknown mode {mode!r}; expected 'loss', 'predict' or 'tensor'")

    def loss(self, inputs: Tensor, data_samples: list[DenseDataSample]) -> dict[str, Tensor]:
        """(B, 3, H, W) + samples with padded training targets -> the head's loss dict."""
        return self.decode_head.loss(self.extract_feat(inputs), data_samples)

    def parse_losses(self, losses: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Sum the ``loss*`` entries; raise :class:`LossDivergedError` if the total is NaN / inf
        or far above its running level (``train_cfg.divergence_factor``).

        ``parse_losses`` runs before the backward pass and the optimizer step, in the plain and in
        the DistributedDataParallel training step alike, so raising here leaves the weights in
        memory and every checkpoint on disk untouched.
        """
        parsed, log_vars = super().parse_losses(losses)
        self.loss_guard.check(parsed, log_vars)
        return parsed, log_vars

    # ------------------------------------------------------------------ inference
    def merge_view(self, output: Tensor) -> Tensor:
        """Map one view's head output (B, C, H, W) into the space where views are averaged
        (identity here; class probabilities for segmentation)."""
        return output

    def add_prediction(self, output: Tensor, sample: DenseDataSample) -> None:
        """Store the merged output (C, H, W) at the original image size into ``sample``."""
        raise NotImplementedError(f"{type(self).__name__} must define add_prediction")

    def inference(self, inputs: Tensor) -> Tensor:
        """(B, 3, H, W) images of one size, without batch padding -> merged output (B, C, H, W).

        Each test-time view (``test_cfg.scales`` x ``flip``) is made from the image content and
        padded by the backbone on the right / bottom, the layout seen in training; its output is
        mirrored / resized back and passed through ``merge_view`` before the views are averaged.
        """
        height, width = inputs.shape[-2:]
        total, views = None, 0
        for scale in self.test_cfg["scales"]:
            scaled = inputs
            if scale != 1.0:
                size = (round(height * scale), round(width * scale))
                scaled = F.interpolate(inputs, size=size, mode="bilinear", align_corners=False)
            for flip in (False, True) if self.test_cfg["flip"] else (False,):
                output = self._infer_view(scaled.flip(-1) if flip else scaled, (height, width))
                if flip:
                    output = output.flip(-1)
                if output.shape[-2:] != (height, width):
                    output = F.interpolate(
                        output, size=(height, width), mode="bilinear", align_corners=False
                    )
                merged = self.merge_view(output)
                total = merged if total is None else total + merged
                views += 1
        return total / views

    def _infer_view(self, inputs: Tensor, output_size: tuple[int, int]) -> Tensor:
        """One view's head output; sliding windows accumulate it at ``output_size`` directly
        (memory bounded by a window batch), the whole image at the view's size."""
        cfg = self.test_cfg
        if cfg["mode"] == "whole":
            return self.encode(inputs)
        return slide_inference(
            self.encode,
            inputs,
            self.decode_head.out_channels,
            crop_size=cfg["crop_size"],
            stride=cfg["stride"],
            batch_size=cfg["batch_size"],
            output_size=output_size,
        )

    def predict(
        self, inputs: Tensor, data_samples: list[DenseDataSample] | None = None
    ) -> list[DenseDataSample]:
        """Predict each image at its original size.

        Every image is cropped to its own ``img_shape`` (the batch padding removed), so its
        prediction does not depend on the other images of the batch; images of one size run
        together. The merged output is resized bilinearly to ``ori_shape`` and handed to
        ``add_prediction``.
        """
        if data_samples is None:
            data_samples = [DenseDataSample() for _ in range(inputs.shape[0])]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, sample in enumerate(data_samples):
            shape = tuple(sample.metainfo.get("img_shape", inputs.shape[-2:]))
            groups.setdefault(shape, []).append(i)
        for (height, width), indices in groups.items():
            outputs = self.inference(inputs[indices, :, :height, :width])
            for output, i in zip(outputs, indices, strict=True):
                sample = data_samples[i]
                self.add_prediction(_resize(output, sample.metainfo.get("ori_shape")), sample)
        return data_samples


def _pair(name: str, value: Any) -> tuple[int, int] | None:
    """``n`` or ``(h, w)`` -> ``(h, w)`` of positive ints (None stays None)."""
    if value is None:
        return None
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ValueError(f"{name} must be a positive int or (h, w), got {value!r}")
    return pair


def _resize(output: Tensor, size: Sequence[int] | None) -> Tensor:
    """(C, h, w) -> (C, *size) bilinearly; unchanged when ``size`` is None or equal."""
    if size is None or tuple(size) == tuple(output.shape[-2:]):
        return output
    return F.interpolate(output[None], size=tuple(size), mode="bilinear", align_corners=False)[0]
