"""Train one model or many at once (one shared recipe), query what they release."""

from mialab.training.ensemble import predict_many, train_many
from mialab.training.outputs import forward_batched, logit_query, predict_logits, query_batch_size
from mialab.training.recipe import Recipe, TrainConfig
from mialab.training.trainer import TrainedModel, accuracy, train_model

__all__ = [
    "TrainConfig",
    "Recipe",
    "TrainedModel",
    "train_model",
    "train_many",
    "predict_many",
    "accuracy",
    "predict_logits",
    "logit_query",
    "forward_batched",
    "query_batch_size",
]
