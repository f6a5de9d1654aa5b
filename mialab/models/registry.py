"""Model registry: a name maps to a builder ``(input_shape, n_classes, **hparams) -> nn.Module``.

Every builder validates its hyperparameters and the input shape it is given; an unknown name or
hyperparameter raises an error listing the valid ones. All models output logits.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence

from torch import nn

from mialab.models.cifar import FastNet, ResNet18
from mialab.validation import check_choice, check_int, check_real

__all__ = ["MODELS", "build_model", "model_names", "LogisticRegression", "MLP", "SmallCNN"]


class LogisticRegression(nn.Module):
    """Multinomial logistic regression: flatten, one linear layer."""

    def __init__(self, input_shape: Sequence[int], n_classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), n_classes))

    def forward(self, x):
        return self.net(x)


class MLP(nn.Module):
    """``depth`` hidden layers of ``width`` units with ReLU and dropout, then a linear head."""

    def __init__(self, input_shape: Sequence[int], n_classes: int, *, width: int = 256,
                 depth: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        width = check_int(width, name="width", low=1)
        depth = check_int(depth, name="depth", low=1)
        check_real(dropout, name="dropout", low=0.0, high=1.0, closed="left")
        layers: list[nn.Module] = [nn.Flatten()]
        d_in = math.prod(input_shape)
        for _ in range(depth):
            layers += [nn.Linear(d_in, width), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            d_in = width
        layers.append(nn.Linear(d_in, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class SmallCNN(nn.Module):
    """Two conv blocks (3x3 conv, GroupNorm, ReLU, 2x2 max-pool), a hidden dense layer, a head.

    For ``(C, 28, 28)`` and ``(C, 32, 32)`` images. Channels: ``width`` then ``2 * width``.
    GroupNorm (not BatchNorm) keeps per-example gradients well defined for DP-SGD.
    """

    def __init__(self, input_shape: Sequence[int], n_classes: int, *, width: int = 32,
                 hidden: int = 128, dropout: float = 0.0, groups: int = 8) -> None:
        super().__init__()
        if len(input_shape) != 3 or tuple(input_shape[1:]) not in ((28, 28), (32, 32)):
            raise ValueError(
                "model 'cnn' expects images of shape (C, 28, 28) or (C, 32, 32), "
                f"got input_shape {tuple(input_shape)}"
            )
        width = check_int(width, name="width", low=1)
        hidden = check_int(hidden, name="hidden", low=1)
        groups = check_int(groups, name="groups", low=1)
        check_real(dropout, name="dropout", low=0.0, high=1.0, closed="left")
        if width % groups or (2 * width) % groups:
            raise ValueError(f"width must be divisible by groups={groups}, got width {width}")
        c, h, _ = input_shape
        side = h // 4
        self.features = nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1), nn.GroupNorm(groups, width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.GroupNorm(groups, 2 * width), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        head: list[nn.Module] = [nn.Flatten(), nn.Linear(2 * width * side * side, hidden), nn.ReLU()]
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(hidden, n_classes))
        self.head = nn.Sequential(*head)

    def forward(self, x):
        return self.head(self.features(x))


MODELS: dict[str, Callable[..., nn.Module]] = {
    "logreg": LogisticRegression,
    "mlp": MLP,
    "cnn": SmallCNN,
    "resnet18": ResNet18,  # mialab.models.cifar: ResNet-18 for 32x32 images, GroupNorm
    "fastnet": FastNet,  # mialab.models.cifar: airbench94-style fast CIFAR-10 net, GroupNorm
}


def model_names() -> list[str]:
    return sorted(MODELS)


def build_model(name: str, *, input_shape: Sequence[int], n_classes: int, **hparams) -> nn.Module:
    """Build the architecture ``name`` for inputs of ``input_shape`` and ``n_classes`` classes.

    Parameters are initialised from PyTorch's global RNG: call inside
    :func:`mialab.seeding.torch_seeded` for a reproducible initialisation.
    """
    check_choice(name, name="model", options=model_names())
    n_classes = check_int(n_classes, name="n_classes", low=2)
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(f"input_shape must be a non-empty tuple of positive ints, got {input_shape!r}")
    builder = MODELS[name]
    allowed = [p for p in inspect.signature(builder).parameters if p not in ("input_shape", "n_classes")]
    unknown = sorted(set(hparams) - set(allowed))
    if unknown:
        raise ValueError(f"model {name!r} takes hyperparameters {allowed}, got unknown {unknown}")
    return builder(shape, n_classes, **hparams)
