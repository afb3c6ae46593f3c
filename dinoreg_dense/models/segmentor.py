"""Semantic segmentation model: register-ViT backbone + decode head on MMEngine's BaseModel."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..registry import MODELS
from ..structures import SegDataSample
from .base import DenseModel
from .sliding_window import slide_inference


@MODELS.register_module()
class Segmentor(DenseModel):
    """Backbone -> decode head -> bilinear upsampling to the label size.

    Args:
        backbone: config of a backbone returning :class:`ViTFeatures` (e.g. ``RegisterViT``).
        decode_head: config of a head mapping features to logits on the patch grid.
        data_preprocessor: config of the batch preprocessor (``SegDataPreProcessor``).
        test_cfg: inference options: ``mode`` 'whole' or 'slide'; ``crop_size`` and ``stride``
            (h, w) for 'slide' (DINOv2: 512 and 341); ``flip`` (average with the horizontally
            flipped image); ``scales`` (image scale factors averaged for multi-scale testing);
            ``batch_size`` windows per forward; ``return_logits`` keep ``seg_logits``.
        init_cfg: MMEngine initialisation config.
    """

    def __init__(
        self,
        backbone: dict,
        decode_head: dict,
        data_preprocessor: dict | None = None,
        test_cfg: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        # Built here: BaseModel would look the type up in MMEngine's root registry.
        preprocessor = MODELS.build(data_preprocessor or dict(type="SegDataPreProcessor"))
        super().__init__(data_preprocessor=preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.decode_head = MODELS.build(decode_head)
        self.num_classes: int = self.decode_head.num_classes
        self.test_cfg = dict(mode="whole", flip=False, scales=(1.0,), batch_size=8)
        self.test_cfg.update(test_cfg or {})

    # ------------------------------------------------------------------ core
    def encode(self, inputs: Tensor) -> Tensor:
        """(B, 3, H, W) normalised images -> logits (B, K, H, W) at the input resolution."""
        features = self.backbone(inputs)
        logits = self.decode_head(features)
        size = _padded_size(inputs, features.padding)
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits[..., : inputs.shape[-2], : inputs.shape[-1]]

    def forward(
        self,
        inputs: Tensor,
        data_samples: list[SegDataSample] | None = None,
        mode: str = "tensor",
    ) -> dict[str, Tensor] | list[SegDataSample] | Tensor:
        """MMEngine entry point: ``mode`` is 'loss', 'predict' or 'tensor' (raw logits)."""
        if mode == "loss":
            return self.loss(inputs, data_samples)
        if mode == "predict":
            return self.predict(inputs, data_samples)
        if mode == "tensor":
            return self.encode(inputs)
        raise ValueError(f"unknown mode {mode!r}; expected 'loss', 'predict' or 'tensor'")

    def loss(self, inputs: Tensor, data_samples: list[SegDataSample]) -> dict[str, Tensor]:
        """(B, 3, H, W) + samples with padded ``gt_sem_seg`` (H, W) -> loss dict."""
        labels = torch.stack([s.gt_sem_seg for s in data_samples]).long()
        if labels.shape[-2:] != inputs.shape[-2:]:
            raise ValueError(f"labels {tuple(labels.shape)} do not match {tuple(inputs.shape)}")
        ignore = self.decode_head.loss_decode.ignore_index
        max_label = int(labels[labels != ignore].max()) if (labels != ignore).any() else -1
        if max_label >= self.num_classes:
            paths = [s.metainfo.get("seg_map_path", "?") for s in data_samples]
            raise ValueError(
                f"label {max_label} in {paths} but the head predicts {self.num_classes} classes; "
                "set model.decode_head.num_classes to the dataset's class count"
            )
        features = self.backbone(inputs)
        size = _padded_size(inputs, features.padding)
        # Patch-grid logits: the loss upsamples them without materialising (B, K, H, W).
        return self.decode_head.loss(self.decode_head(features), labels, size)

    # ------------------------------------------------------------------ inference
    def inference(self, inputs: Tensor) -> Tensor:
        """(B, 3, H, W) -> class probabilities (B, K, H, W), averaged over the test-time
        augmentations in ``test_cfg`` (scales, flip)."""
        height, width = inputs.shape[-2:]
        probs = inputs.new_zeros((inputs.shape[0], self.num_classes, height, width))
        views = 0
        for scale in self.test_cfg["scales"]:
            scaled = inputs
            if scale != 1.0:
                size = (round(height * scale), round(width * scale))
                scaled = F.interpolate(inputs, size=size, mode="bilinear", align_corners=False)
            for flip in (False, True) if self.test_cfg["flip"] else (False,):
                view = scaled.flip(-1) if flip else scaled
                logits = self._infer_view(view)
                if flip:
                    logits = logits.flip(-1)
                if scale != 1.0:
                    logits = F.interpolate(
                        logits, size=(height, width), mode="bilinear", align_corners=False
                    )
                probs += logits.softmax(dim=1)
                views += 1
        return probs / views

    def _infer_view(self, inputs: Tensor) -> Tensor:
        cfg = self.test_cfg
        if cfg["mode"] == "whole":
            return self.encode(inputs)
        if cfg["mode"] == "slide":
            return slide_inference(
                self.encode,
                inputs,
                self.num_classes,
                crop_size=cfg["crop_size"],
                stride=cfg["stride"],
                batch_size=cfg["batch_size"],
            )
        raise ValueError(f"test_cfg.mode must be 'whole' or 'slide', got {cfg['mode']!r}")

    def predict(
        self, inputs: Tensor, data_samples: list[SegDataSample] | None = None
    ) -> list[SegDataSample]:
        """Predict classes at each image's original size.

        Probabilities are cropped to ``img_shape`` (removing batch padding) and resized
        bilinearly to ``ori_shape``; results go into ``pred_sem_seg`` (H, W) int64 and, with
        ``test_cfg.return_logits``, ``seg_logits`` (K, H, W) probabilities.
        """
        probs = self.inference(inputs)
        if data_samples is None:
            data_samples = [SegDataSample() for _ in range(inputs.shape[0])]
        for prob, sample in zip(probs, data_samples, strict=True):
            img_h, img_w = sample.metainfo.get("img_shape", prob.shape[-2:])
            prob = prob[:, :img_h, :img_w]
            ori_shape: Sequence[int] = sample.metainfo.get("ori_shape", (img_h, img_w))
            if tuple(ori_shape) != (img_h, img_w):
                prob = F.interpolate(
                    prob[None], size=tuple(ori_shape), mode="bilinear", align_corners=False
                )[0]
            sample.pred_sem_seg = prob.argmax(dim=0)
            if self.test_cfg.get("return_logits"):
                sample.seg_logits = prob
        return data_samples


def _padded_size(inputs: Tensor, padding: tuple[int, int]) -> tuple[int, int]:
    """(H, W) of ``inputs`` (B, 3, H, W) plus the backbone's (bottom, right) padding."""
    return inputs.shape[-2] + padding[0], inputs.shape[-1] + padding[1]
