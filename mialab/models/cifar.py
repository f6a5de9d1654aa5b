"""CIFAR-grade architectures for 32x32 (and 28x28) images, Opacus-compatible (GroupNorm, no BatchNorm).

* :class:`ResNet18` (registry name ``"resnet18"``): ResNet-18 (He et al. 2016, "Deep Residual
  Learning for Image Recognition") in the form used for CIFAR-10 by most membership-inference
  papers: a 3x3 stride-1 stem, no max-pool, four stages of two basic blocks. About 11.17M
  parameters at the default width.
* :class:`FastNet` (registry name ``"fastnet"``): the small VGG-like network of the fast CIFAR-10
  training recipes (Keller Jordan's ``airbench94``, "94% on CIFAR-10 in 3.29 seconds on a single
  GPU", 2024; after Page's and tysam-code's speedruns): a 2x2 stem conv, three conv blocks with
  GELU, a final max-pool and a scaled linear head. About 1.97M parameters at the default width.

Both replace BatchNorm by GroupNorm: BatchNorm mixes the examples of a batch, so per-example
gradients (DP-SGD, Opacus) are not defined, and its running statistics are buffers updated in the
training pass, which the stacked trainer (:func:`mialab.training.train_many`) cannot reproduce.
Parameters are drawn from PyTorch's global RNG: build inside :func:`mialab.seeding.torch_seeded`
(as the trainers do) for a reproducible initialisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mialab.validation import check_int, check_real

__all__ = ["ResNet18", "FastNet", "BasicBlock"]

#: image sides the CIFAR models accept: CIFAR-10/100 (32x32) and MNIST-like (28x28)
_SIDES = ((28, 28), (32, 32))


def _check_image_shape(input_shape: Sequence[int], model: str) -> int:
    """The channel count of ``input_shape`` ``(C, 28, 28)`` or ``(C, 32, 32)``, or ``ValueError``."""
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[1:] not in _SIDES or shape[0] < 1:
        raise ValueError(f"model {model!r} expects images of shape (C, 28, 28) or (C, 32, 32), "
                         f"got input_shape {shape}")
    return int(shape[0])


def _check_groups(groups: int, channels: Sequence[int], *, model: str, width: int) -> None:
    """GroupNorm needs ``groups`` to divide every normalised layer's channel count."""
    bad = sorted({c for c in channels if c % groups})
    if bad:
        raise ValueError(f"model {model!r}: groups={groups} must divide every layer's channel count, "
                         f"got width {width} (channels {sorted(set(channels))}; not divisible: {bad})")


class BasicBlock(nn.Module):
    """ResNet basic block: ``x -> relu(norm(conv3x3(relu(norm(conv3x3(x))))) + shortcut(x))``.

    ``(n, c_in, h, w) -> (n, c_out, h / stride, w / stride)`` (sides rounded up). The shortcut is
    the identity, or a strided 1x1 conv and GroupNorm when the shape changes (He et al. 2016,
    option B).
    """

    def __init__(self, c_in: int, c_out: int, *, stride: int, groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.relu = nn.ReLU()
        if stride != 1 or c_in != c_out:
            self.shortcut: nn.Module = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                                     nn.GroupNorm(groups, c_out))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for 32x32 images with GroupNorm (He et al. 2016, CIFAR variant).

    ``(n, C, 32, 32)`` or ``(n, C, 28, 28)`` float images -> ``(n, n_classes)`` logits.

    Stem: 3x3 conv, stride 1, ``width`` channels, GroupNorm, ReLU, no max-pool (the ImageNet
    7x7/2 stem and pool would shrink a 32x32 image to 8x8 before the first block). Then four
    stages of two :class:`BasicBlock` with ``width x (1, 2, 4, 8)`` channels and strides
    1/2/2/2 (32 -> 32 -> 16 -> 8 -> 4 pixels; 28 -> 28 -> 14 -> 7 -> 4), a global average pool
    and a linear head. This is the ResNet-18 of the LiRA/RMIA CIFAR-10 experiments and of the
    common ``pytorch-cifar`` code, with GroupNorm in place of BatchNorm (same parameter count).

    Hyperparameters: ``width`` (base channels, default 64), ``groups`` (GroupNorm groups, default
    32; must divide ``width``, hence every stage's channels).

    Parameters (3-channel input, 10 classes): 11,173,962 at ``width=64``; 2,797,610 at 32;
    701,466 at 16 (growing as ``width**2``).
    Convolutions: Kaiming-normal (fan-out, ReLU gain), as torchvision's ResNet; GroupNorm weight 1,
    bias 0; the head keeps PyTorch's default.

    >>> import torch
    >>> from mialab.seeding import torch_seeded
    >>> with torch_seeded(0):
    ...     net = ResNet18((3, 32, 32), 10, width=16, groups=8)
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(self, input_shape: Sequence[int], n_classes: int, *, width: int = 64, groups: int = 32) -> None:
        super().__init__()
        c = _check_image_shape(input_shape, "resnet18")
        width = check_int(width, name="width", low=1, hint="base channels of resnet18")
        groups = check_int(groups, name="groups", low=1, hint="GroupNorm groups")
        channels = [width, 2 * width, 4 * width, 8 * width]
        _check_groups(groups, channels, model="resnet18", width=width)
        self.stem = nn.Sequential(nn.Conv2d(c, width, 3, padding=1, bias=False), nn.GroupNorm(groups, width),
                                  nn.ReLU())
        blocks: list[nn.Module] = []
        c_in = width
        for c_out, stride in zip(channels, (1, 2, 2, 2)):
            blocks += [BasicBlock(c_in, c_out, stride=stride, groups=groups),
                       BasicBlock(c_out, c_out, stride=1, groups=groups)]
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(c_in, n_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.blocks(self.stem(x))))


class _Scale(nn.Module):
    """Multiply by a fixed constant (airbench's ``Mul``): no parameter, no buffer."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale:g}"


class FastNet(nn.Module):
    """The fast CIFAR-10 network of ``airbench94`` (Jordan 2024), with GroupNorm for DP.

    ``(n, C, 32, 32)`` or ``(n, C, 28, 28)`` float images -> ``(n, n_classes)`` logits.

    Layout (as airbench94's ``make_net``): a 2x2 conv without padding to ``8 x C`` channels
    (24 for RGB) with bias, GELU; three blocks of (3x3 conv, 2x2 max-pool, GroupNorm, GELU, 3x3
    conv, GroupNorm, GELU) with ``width``, ``4 x width``, ``4 x width`` channels (64/256/256 at
    the default), convs without bias; a 3x3 max-pool; a linear head without bias; logits times
    ``logit_scale`` (airbench: 1/9, which tempers the early logits). Sides: 32 -> 31 -> 15 -> 7
    -> 3 -> 1 (28 -> 27 -> 13 -> 6 -> 3 -> 1).

    Differences from airbench94, all for DP-SGD and the stacked trainer: GroupNorm (affine,
    trainable) instead of BatchNorm with a frozen scale, and the stem is an ordinary learnable
    conv (airbench initialises it from the training images' patch-whitening eigenvectors and
    freezes it; that needs data at build time and is a data-dependent, non-private step).
    Convolutions and the head keep PyTorch's default initialisation (airbench re-initialises the
    convs as identity-like Dirac kernels; not done here). The recipe that makes it fast (SGD with
    Nesterov momentum, label smoothing 0.2, a warm-up/decay schedule, flip and translate
    augmentation, test-time flipping) is a training preset, not part of the architecture.

    Hyperparameters: ``width`` (first block's channels, default 64), ``groups`` (GroupNorm
    groups, default 16; must divide ``width``), ``logit_scale`` (default 1/9).

    Parameters (3-channel input, 10 classes): 1,972,792 at ``width=64`` (airbench94: 1.97M);
    127,096 at 16 (growing as ``width**2``).

    >>> import torch
    >>> from mialab.seeding import torch_seeded
    >>> with torch_seeded(0):
    ...     net = FastNet((1, 28, 28), 10, width=16, groups=8)
    >>> net(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """

    def __init__(self, input_shape: Sequence[int], n_classes: int, *, width: int = 64, groups: int = 16,
                 logit_scale: float = 1 / 9) -> None:
        super().__init__()
        c = _check_image_shape(input_shape, "fastnet")
        width = check_int(width, name="width", low=1, hint="channels of fastnet's first block")
        groups = check_int(groups, name="groups", low=1, hint="GroupNorm groups")
        logit_scale = check_real(logit_scale, name="logit_scale", low=0.0, closed="neither")
        widths = [width, 4 * width, 4 * width]
        _check_groups(groups, widths, model="fastnet", width=width)
        stem = 8 * c  # airbench: 2 x C x kernel**2, the number of whitening filters of 2x2 patches
        layers: list[nn.Module] = [nn.Conv2d(c, stem, 2, padding=0, bias=True), nn.GELU()]
        c_in = stem
        for c_out in widths:
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.MaxPool2d(2),
                       nn.GroupNorm(groups, c_out), nn.GELU(),
                       nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
                       nn.GroupNorm(groups, c_out), nn.GELU()]
            c_in = c_out
        layers += [nn.MaxPool2d(3), nn.Flatten(), nn.Linear(c_in, n_classes, bias=False), _Scale(logit_scale)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
