"""Data augmentation as a training-time defense: every epoch sees a perturbed copy of each record.

Augmentation lowers overfitting to the exact training records, which is what membership attacks
exploit (Shokri et al. 2017; Kaya & Dumitras 2021 measure its effect on MIAs). It acts through
the trainer's ``batch_transform`` hook only: the recipe and the model are unchanged, and every
random draw comes from the ``torch.Generator`` the trainer passes (seeded from the model's seed
by purpose ``"augment"``), so training stays reproducible and independent of global RNG state.

Per batch, in this order:

- images (``xb`` of shape ``(b, C, H, W)``):

  * random crop with zero padding (``crop_padding`` px): each example is shifted by an
    independent ``(dy, dx)`` in ``[-crop_padding, crop_padding]^2``; pixels shifted in from
    outside the image are 0 (the padded-then-cropped image of the CIFAR-10 recipes);
  * horizontal flip of a random half (``flip``): off by default because it is meaningful only
    where a mirrored record is still a record of its class (natural images such as CIFAR-10),
    not for digits or text, whose mirror images are other symbols or none;

- images or tabular rows (``(b, d)``):

  * mixup (``mixup_alpha > 0``, Zhang et al. 2018): each example is mixed with a partner from a
    random permutation of the batch, ``x = lam * x_i + (1 - lam) * x_j`` and the targets likewise
    (``t = lam * t_i + (1 - lam) * t_j``, still probability rows), with an independent
    ``lam ~ Beta(mixup_alpha, mixup_alpha)`` per example;
  * Gaussian noise (``noise > 0``): ``x + noise * N(0, 1)``, in input units, not clipped (the
    data's range is not known here; features may be standardised).

For tabular rows the crop is skipped (so the default ``crop_padding=2`` is harmless there);
``flip=True`` on tabular rows is refused, and so is a configuration that changes nothing for the
batch it is given (tabular rows without noise or mixup).

Example
-------
>>> import torch
>>> aug = Augmentation(crop_padding=1, noise=0.0)
>>> x = torch.ones(2, 1, 4, 4); t = torch.eye(2)
>>> xa, ta = aug.transform(x, t, torch.Generator().manual_seed(0))
>>> xa.shape, bool(torch.equal(ta, t)), bool(((xa == 0) | (xa == 1)).all())
(torch.Size([2, 1, 4, 4]), True, True)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch.nn import functional as F

from mialab.defenses.base import TrainingDefense, check_field, register_defense
from mialab.seeding import numpy_rng
from mialab.training import TrainConfig
from mialab.validation import check_bool, check_int, check_real

__all__ = ["Augmentation"]


@register_defense
@dataclasses.dataclass(frozen=True, kw_only=True)
class Augmentation(TrainingDefense):
    """Random crop with zero padding, horizontal flip, mixup and Gaussian noise (see module).

    ``crop_padding``: int ``>= 0`` (images; must be smaller than the image's height and width);
    ``flip``: bool (images only); ``noise``: standard deviation ``>= 0`` in input units;
    ``mixup_alpha``: ``>= 0``, the Beta parameter (0 turns mixup off). At least one must be on.
    """

    name = "augmentation"
    crop_padding: int = 2
    flip: bool = False
    noise: float = 0.0
    mixup_alpha: float = 0.0

    def __post_init__(self) -> None:
        check_field(self, "crop_padding", check_int, low=0)
        check_field(self, "flip", check_bool)
        check_field(self, "noise", check_real, low=0.0)
        check_field(self, "mixup_alpha", check_real, low=0.0)
        if not (self.crop_padding or self.flip or self.noise or self.mixup_alpha):
            raise ValueError("Augmentation must change something: set crop_padding > 0, flip=True, noise > 0 or "
                             f"mixup_alpha > 0, got {self}")

    def hooks(self, *, n_train: int, training: TrainConfig, seed: int) -> dict[str, Any]:
        return {"batch_transform": self.transform}

    def transform(self, xb: torch.Tensor, tb: torch.Tensor,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment one batch: ``xb`` ``(b, C, H, W)`` or ``(b, d)`` float inputs, ``tb`` ``(b, C)``
        target probabilities -> new tensors of the same shapes (inputs are not modified in place).
        All randomness is drawn from ``generator``."""
        if xb.ndim not in (2, 4):
            raise ValueError(f"Augmentation expects inputs of shape (b, C, H, W) or (b, d), got {tuple(xb.shape)}")
        if tb.ndim != 2 or tb.shape[0] != xb.shape[0]:
            raise ValueError(f"Augmentation expects targets of shape ({xb.shape[0]}, n_classes), got {tuple(tb.shape)}")
        image = xb.ndim == 4
        if not image:
            if self.flip:
                raise ValueError("Augmentation.flip=True applies to images (b, C, H, W) only, "
                                 f"got tabular inputs of shape {tuple(xb.shape)}")
            if not (self.noise or self.mixup_alpha):
                raise ValueError("Augmentation on tabular inputs (b, d) applies only noise and mixup: set noise > 0 "
                                 f"or mixup_alpha > 0, got noise={self.noise}, mixup_alpha={self.mixup_alpha}")
        if image and self.crop_padding >= min(xb.shape[2], xb.shape[3]):
            raise ValueError(f"Augmentation.crop_padding must be smaller than the image's height and width, got "
                             f"{self.crop_padding} for images of shape {tuple(xb.shape[1:])}")
        if xb.shape[0] == 0:  # Poisson sampling (DP-SGD) can draw an empty batch
            return xb, tb
        if image and self.crop_padding:
            xb = random_crop(xb, self.crop_padding, generator)
        if image and self.flip:
            flipped = (torch.rand(xb.shape[0], generator=generator) < 0.5).to(xb.device)  # drawn on the CPU
            xb = torch.where(flipped[:, None, None, None], xb.flip(-1), xb)
        if self.mixup_alpha:
            xb, tb = mixup(xb, tb, self.mixup_alpha, generator)
        if self.noise:
            xb = xb + self.noise * torch.randn(xb.shape, generator=generator, dtype=xb.dtype).to(xb.device)
        return xb, tb


def random_crop(xb: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image of ``xb`` ``(b, C, H, W)`` by its own random ``(dy, dx)`` in
    ``[-padding, padding]^2``, filling with zeros: pad by ``padding`` on every side, then crop an
    ``H x W`` window at a random offset. Vectorised by gathering all windows at once."""
    b, c, h, w = xb.shape
    padded = F.pad(xb, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (2, b), generator=generator)  # drawn on the CPU
    dev = xb.device
    rows = (offsets[0][:, None] + torch.arange(h)).to(dev)  # (b, H): padded row of each output row
    cols = (offsets[1][:, None] + torch.arange(w)).to(dev)  # (b, W)
    return padded[torch.arange(b, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


def mixup(xb: torch.Tensor, tb: torch.Tensor, alpha: float,
          generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each example (inputs and target rows) with a random partner from the same batch,
    ``lam ~ Beta(alpha, alpha)`` per example (Zhang et al. 2018, "mixup")."""
    b = xb.shape[0]
    partner = torch.randperm(b, generator=generator)
    # torch.distributions draws from the global RNG; a numpy Generator seeded from ``generator``
    # keeps every draw under the caller's seed
    beta_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    lam = torch.as_tensor(numpy_rng(beta_seed).beta(alpha, alpha, size=b), dtype=xb.dtype, device=xb.device)
    partner = partner.to(xb.device)
    lam_x = lam.reshape(b, *([1] * (xb.ndim - 1)))
    mixed_t = lam[:, None].to(tb.dtype) * tb + (1 - lam[:, None].to(tb.dtype)) * tb[partner]
    return lam_x * xb + (1 - lam_x) * xb[partner], mixed_t
