"""Knowledge distillation as a defense: deploy a student trained on a teacher's softened outputs.

The teacher is trained normally on the private data; the student learns from the teacher's
temperature-softened probabilities ``softmax(z_teacher / T)`` (Hinton et al. 2015) and is what
gets deployed and attacked. Two modes:

- ``"self"``: the student trains on the same private records as the teacher, as distillation is
  commonly described; the student still sees every member, only through softer targets.
- ``"reference"`` (DMP, Shejwalkar & Houmansadr 2021): the student trains on a *reference* set
  disjoint from the private data, labelled by the teacher only, so it never sees a member
  directly. The caller passes ``reference=(X_ref, y_ref)``; those records must be disjoint from
  everything the audit evaluates and from the attacker's records (take them from a separate
  slice of the dataset). ``y_ref`` is used only to measure the student's accuracy; it trains on
  the teacher's soft labels.

As in Hinton et al., the student trains on its own logits divided by ``T`` (with the loss scaled
by ``T**2``, ``train_model(..., logit_temperature=T)``) and is released at ``T = 1``.

In the audit, ``"reference"`` mode takes the split's defender-side ``reference`` slice
(``AuditConfig.n_reference``), disjoint from the evaluated records and from the attacker's
pool; each shadow (Kerckhoffs) distils onto its own reference records drawn from attacker-side
pool records outside its shadow pool.

The teacher and the student are trained by the same bound function, hence with the same seed
(initialisation and data order); the student's targets differ, so does the student.

Example
-------
>>> d = Distillation(temperature=2.0, mode="reference")
>>> d.describe()
{'name': 'distillation', 'temperature': 2.0, 'mode': 'reference'}
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mialab.defenses.base import TrainFn, TrainingDefense, check_field, register_defense
from mialab.training import TrainConfig, TrainedModel, accuracy, predict_logits
from mialab.validation import check_choice, check_real

__all__ = ["Distillation", "softened_probabilities"]

_MODES = ("self", "reference")


def softened_probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(logits / temperature)`` row-wise, in float64 (stable: the max is subtracted).

    ``logits``: ``(n, C)``; returns ``(n, C)`` probability rows.

    >>> softened_probabilities(np.array([[2.0, 0.0]]), 2.0).round(4).tolist()
    [[0.7311, 0.2689]]
    """
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


@register_defense
@dataclasses.dataclass(frozen=True, kw_only=True)
class Distillation(TrainingDefense):
    """Train a teacher, deploy a student trained on its softened outputs (see module).

    ``temperature``: ``T > 0`` (``T > 1`` softens; Hinton et al. use 2-20); ``mode``: ``"self"``
    or ``"reference"``. The returned model is the student; its ``defense_report`` holds
    ``teacher_train_accuracy``, ``teacher_test_accuracy`` (``None`` without test data),
    ``temperature``, ``mode`` and ``student_private_accuracy`` (the student's accuracy on the
    private training records: in ``"reference"`` mode the student's ``train_accuracy`` is
    measured on the reference set it trained on, so this is the number to compare with the
    teacher's train accuracy).
    """

    name = "distillation"
    temperature: float = 4.0
    mode: str = "self"

    def __post_init__(self) -> None:
        check_field(self, "temperature", check_real, low=0.0, closed="neither")
        check_choice(self.mode, name="Distillation.mode", options=_MODES)

    @property
    def needs_reference(self) -> bool:
        return self.mode == "reference"

    def train(self, train: TrainFn, X: np.ndarray, y: np.ndarray, *, training: TrainConfig, seed: int,
              reference: tuple[np.ndarray, np.ndarray] | None = None) -> TrainedModel:
        """Train the teacher on ``(X, y)``, then the student on ``(X, y)`` (``"self"``) or on
        ``reference = (X_ref, y_ref)`` (``"reference"``, required there and refused otherwise),
        with the teacher's softened probabilities as targets. Returns the student."""
        X = np.asarray(X)
        if self.mode == "reference":
            if reference is None:
                raise ValueError("Distillation(mode='reference') needs reference=(X_ref, y_ref): records disjoint "
                                 "from the private data and from everything evaluated, got None")
            X_student, y_student = _check_reference(reference, X.shape[1:])
        else:
            if reference is not None:
                raise ValueError("Distillation(mode='self') trains the student on the private data: "
                                 "reference must be None, got reference data (use mode='reference')")
            X_student, y_student = X, np.asarray(y)
        teacher = train(X, y)
        soft = softened_probabilities(predict_logits(teacher.model, X_student), self.temperature)
        student = train(X_student, y_student, soft_targets=soft.astype(np.float32),
                        logit_temperature=self.temperature)
        private_accuracy = student.train_accuracy if self.mode == "self" else accuracy(student.model, X, y)
        student.defense_report = {
            **student.defense_report,  # e.g. what a combined defense's hooks reported
            "teacher_train_accuracy": teacher.train_accuracy,
            "teacher_test_accuracy": teacher.test_accuracy,
            "temperature": self.temperature,
            "mode": self.mode,
            "student_private_accuracy": private_accuracy,
        }
        return student


def _check_reference(reference: object, input_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(reference, (tuple, list)) or len(reference) != 2:
        raise ValueError(f"reference must be a pair (X_ref, y_ref), got {type(reference).__name__}")
    X_ref, y_ref = np.asarray(reference[0]), np.asarray(reference[1])
    if X_ref.ndim < 1 or X_ref.shape[0] == 0 or X_ref.shape[1:] != tuple(input_shape):
        raise ValueError(f"reference X_ref must have shape (n > 0, *{tuple(input_shape)}) like the private data, "
                         f"got {X_ref.shape}")
    if y_ref.shape != (X_ref.shape[0],):
        raise ValueError(f"reference y_ref must have shape ({X_ref.shape[0]},), got {y_ref.shape}")
    return X_ref, y_ref
