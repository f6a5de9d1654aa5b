"""Train one model or many at once, collect what they release."""

from mialab.training.ensemble import predict_many, train_many
from mialab.training.outputs import collect_outputs, logit_query, predict_logits
from mialab.training.trainer import TrainConfig, TrainedModel, accuracy, train_model

__all__ = [
    "TrainConfig",
    "TrainedModel",
    "train_model",
    "train_many",
    "predict_many",
    "accuracy",
    "predict_logits",
    "logit_query",
    "collect_outputs",
]
