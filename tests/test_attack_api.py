"""The attacks' scikit-learn estimator contract: ``sklearn.base.clone``, ``get_params`` /
``set_params`` round trips and a registered name that follows from the parameters.

No fitting here (fast): clone of a fitted attack and ``score_samples`` are tested with the
synthetic shadows of tests/test_attacks.py.
"""

from __future__ import annotations

import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_set_params,
)

from mialab.attacks import RMIA, Attack, LiRA, MetricAttack, attack_names, make_attack
from mialab.attacks.base import ATTACKS, register_attack


def _non_default(name: str):
    """``make_attack(name)`` with a non-default ``random_state``, so a copy that silently falls
    back to the defaults is caught."""
    return make_attack(name, random_state=5)


@pytest.mark.parametrize("name", attack_names())
def test_clone_is_the_same_attack(name):
    attack = _non_default(name)
    copy = clone(attack)
    assert copy is not attack and type(copy) is type(attack)
    assert copy.get_params() == attack.get_params() and copy.get_params()["random_state"] == 5
    assert copy.get_params(deep=False) == attack.get_params(deep=False)
    assert copy.name == attack.name == name


@pytest.mark.parametrize("name", attack_names())
def test_constructor_only_stores_its_arguments(name):
    # scikit-learn's own checks as the oracle: __init__ sets exactly the parameters, unchanged,
    # and get_params(deep=True) contains get_params(deep=False); set_params stores values as
    # given (validation waits for fit, so any value goes in and comes back out)
    attack = _non_default(name)
    check_no_attributes_set_in_init(type(attack).__name__, attack)
    check_get_params_invariance(type(attack).__name__, attack)
    check_set_params(type(attack).__name__, attack)
    params = attack.get_params(deep=False)
    rebuilt = type(attack)(**params)
    assert all(getattr(rebuilt, k) is v for k, v in params.items())


@pytest.mark.parametrize("name", attack_names())
def test_set_params_round_trip(name):
    source = _non_default(name)
    target = make_attack(name, random_state=9)
    assert target.set_params(**source.get_params(deep=True)) is target
    assert target.get_params() == source.get_params() and target.name == name
    assert target.set_params() is target and target.get_params() == source.get_params()
    assert target.set_params(random_state=11).random_state == 11


@pytest.mark.parametrize("name", attack_names())
def test_set_params_refuses_an_unknown_name_and_changes_nothing(name):
    attack = _non_default(name)
    before = attack.get_params()
    with pytest.raises(ValueError, match=r"set_params: attack .* takes parameters \[.*'random_state'.*\], "
                                         r"got unknown \['bogus'\]"):
        attack.set_params(random_state=7, bogus=1)
    assert attack.get_params() == before  # checked before anything is set


def test_name_follows_the_parameters():
    assert MetricAttack().name == "loss"
    assert MetricAttack(signal="entropy").name == "entropy"
    assert MetricAttack(signal="confidence", classwise=True).name == "threshold"
    assert LiRA(online=True).name == "lira-online" and LiRA().name == "lira-offline"
    assert RMIA(online=True).name == "rmia-online"
    # set_params may change what defines the attack (scikit-learn allows every parameter);
    # the name follows, so a clone, a record or a message never names another attack
    attack = make_attack("loss").set_params(signal="modified-entropy")
    assert attack.name == clone(attack).name == "modified-entropy"
    # parameters no registered attack has: the family's name (validation then refuses them)
    assert MetricAttack(signal="nope").name == "metric"
    with pytest.raises(AttributeError):
        attack.name = "loss"  # the name cannot drift from the parameters


def test_register_attack_refuses_what_would_make_names_ambiguous():
    before = dict(ATTACKS)
    with pytest.raises(ValueError, match=r"'loss2'.*same as 'loss'"):
        register_attack("loss2", MetricAttack, signal="loss")
    with pytest.raises(ValueError, match=r"fixed parameters of 'odd' must be parameters of MetricAttack .*"
                                         r"got \['metric'\]"):
        register_attack("odd", MetricAttack, metric="loss")
    with pytest.raises(ValueError, match="already registered"):
        register_attack("loss", MetricAttack, signal="loss")
    assert ATTACKS == before


class _WithEstimator(Attack):
    """An unregistered attack whose parameter is itself an estimator (none of mialab's is)."""

    family = "with-estimator"

    def __init__(self, *, classifier=None, random_state: int = 0) -> None:
        super().__init__(random_state=random_state)
        self.classifier = classifier

    def _fit(self, data):
        self.threshold_ = 0.5

    def _score(self, observed):
        raise NotImplementedError


def test_nested_estimator_parameters_follow_scikit_learn():
    attack = _WithEstimator(classifier=LogisticRegression(C=2.0))
    deep, shallow = attack.get_params(deep=True), attack.get_params(deep=False)
    assert deep["classifier__C"] == 2.0 and set(shallow) == {"classifier", "random_state"}
    assert attack.set_params(classifier__C=3.0, random_state=1) is attack
    assert attack.classifier.C == 3.0 and attack.random_state == 1
    copy = clone(attack)  # clones the inner estimator too
    assert copy.classifier is not attack.classifier and copy.get_params()["classifier__C"] == 3.0
    with pytest.raises(ValueError, match=r"parameter 'random_state' of attack 'with-estimator' is not an "
                                         r"estimator, got nested parameters \['x'\]"):
        attack.set_params(random_state__x=1)
    with pytest.raises(ValueError, match=r"got unknown \['classifer__C'\]"):
        attack.set_params(classifer__C=1.0)
    assert attack.name == "with-estimator"  # unregistered: the family's name
