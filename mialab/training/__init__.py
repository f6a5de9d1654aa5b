"""Train one model, collect what it releases."""

from mialab.training.outputs import collect_outputs, logit_query, predict_logits
from mialab.training.trainer import TrainConfig, TrainedModel, accuracy, train_model

__all__ = [
    "TrainConfig",
    "TrainedModel",
    "train_model",
    "accuracy",
    "predict_logits",
    "logit_query",
    "collect_outputs",
]
