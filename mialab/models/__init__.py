"""Architectures by name, all Opacus-compatible (GroupNorm where normalisation is needed, no
BatchNorm). ``build_model("mlp", input_shape=(64,), n_classes=10, width=128)``."""

from mialab.models.cifar import FastNet, ResNet18
from mialab.models.registry import MODELS, build_model, model_names

__all__ = ["MODELS", "build_model", "model_names", "ResNet18", "FastNet"]
