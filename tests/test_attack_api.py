"""The attacks' scikit-learn estimator contract: ``sklearn.base.clone``, ``get_params`` /
``set_params`` round trips and a registered name that follows from the parameters; the
deprecated ``random_state`` alias of ``seed``.

No fitting here (fast): clone of a fitted attack and ``score_samples`` are tested with the
synthetic shadows of tests/test_attacks.py.
"""

from __future__ import annotations

import warnings

import numpy as np
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
    """``make_attack(name)`` with a non-default ``seed``, so a copy that silently falls back to
    the defaults is caught."""
    return make_attack(name, seed=5)


@pytest.mark.parametrize("name", attack_names())
def test_clone_is_the_same_attack(name):
    attack = _non_default(name)
    copy = clone(attack)
    assert copy is not attack and type(copy) is type(attack)
    assert copy.get_params() == attack.get_params() and copy.get_params()["seed"] == 5
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
    target = make_attack(name, seed=9)
    assert target.set_params(**source.get_params(deep=True)) is target
    assert target.get_params() == source.get_params() and target.name == name
    assert target.set_params() is target and target.get_params() == source.get_params()
    assert target.set_params(seed=11).seed == 11


@pytest.mark.parametrize("name", attack_names())
def test_set_params_refuses_an_unknown_name_and_changes_nothing(name):
    attack = _non_default(name)
    before = attack.get_params()
    with pytest.raises(ValueError, match=r"set_params: attack .* takes parameters \[.*'seed'.*\], "
                                         r"got unknown \['bogus'\]"):
        attack.set_params(seed=7, bogus=1)
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

    def __init__(self, *, classifier=None, seed: int = 0) -> None:
        super().__init__(seed=seed)
        self.classifier = classifier

    def _fit(self, data):
        self.threshold_ = 0.5

    def _score(self, observed):
        raise NotImplementedError


def test_nested_estimator_parameters_follow_scikit_learn():
    attack = _WithEstimator(classifier=LogisticRegression(C=2.0))
    deep, shallow = attack.get_params(deep=True), attack.get_params(deep=False)
    assert deep["classifier__C"] == 2.0 and set(shallow) == {"classifier", "seed"}
    assert attack.set_params(classifier__C=3.0, seed=1) is attack
    assert attack.classifier.C == 3.0 and attack.seed == 1
    copy = clone(attack)  # clones the inner estimator too
    assert copy.classifier is not attack.classifier and copy.get_params()["classifier__C"] == 3.0
    with pytest.raises(ValueError, match=r"parameter 'seed' of attack 'with-estimator' is not an "
                                         r"estimator, got nested parameters \['x'\]"):
        attack.set_params(seed__x=1)
    with pytest.raises(ValueError, match=r"got unknown \['classifer__C'\]"):
        attack.set_params(classifer__C=1.0)
    assert attack.name == "with-estimator"  # unregistered: the family's name


# ----------------------------------------------------------------------------------------------
# random_state: a deprecated alias of seed, for one release
# ----------------------------------------------------------------------------------------------
_ALIAS_WARNING = r"random_state is deprecated for attacks: use seed"


@pytest.mark.parametrize("name", attack_names())
def test_random_state_warns_and_sets_seed(name):
    with pytest.warns(DeprecationWarning, match=_ALIAS_WARNING) as record:
        old = make_attack(name, random_state=5)
    # the warning points at the caller (this file), not at mialab's constructors
    assert [w.filename for w in record] == [__file__]
    new = make_attack(name, seed=5)
    # not a parameter of its own: the same attack as with seed, under the same name, recorded alike
    assert old.get_params() == new.get_params() and old.seed == 5 and "random_state" not in old.get_params()
    assert old.name == new.name == name
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clone of an attack built with the alias warns no more
        copy = clone(old)
    assert copy.get_params() == new.get_params() and copy.name == name


@pytest.mark.parametrize("cls", [MetricAttack, LiRA, RMIA])
def test_random_state_in_every_constructor(cls):
    with pytest.warns(DeprecationWarning, match=_ALIAS_WARNING) as record:
        assert cls(random_state=3).get_params() == cls(seed=3).get_params()
    assert [w.filename for w in record] == [__file__]


def test_default_name_and_params_do_not_change():
    # results.json records get_params() and the derived name: defaults give seed 0, no alias
    for name in attack_names():
        attack = make_attack(name)
        assert attack.name == name and attack.get_params(deep=False)["seed"] == 0
        assert type(attack.seed) is int and "random_state" not in attack.get_params()


@pytest.mark.parametrize("seed", [0, 4])
def test_seed_and_random_state_together_are_refused(seed):
    # even seed=0, the default's value: passing both is refused whatever the values
    with pytest.raises(ValueError, match=rf"pass seed or its deprecated alias random_state, not both: "
                                         rf"got seed={seed} and random_state=1"):
        make_attack("loss", seed=seed, random_state=1)
    with pytest.raises(ValueError, match=r"not both"):
        LiRA(seed=seed, random_state=1)
    attack = make_attack("lira-online", seed=2)
    with pytest.raises(ValueError, match=r"set_params: pass seed or its deprecated alias random_state, not both"):
        attack.set_params(seed=seed, random_state=1)
    assert attack.seed == 2


def test_random_state_attribute_and_set_params_are_deprecated_aliases():
    attack = make_attack("rmia-offline", seed=2)
    with pytest.warns(DeprecationWarning, match=r"Attack.random_state is deprecated: use Attack.seed"):
        assert attack.random_state == 2
    with pytest.warns(DeprecationWarning, match=_ALIAS_WARNING):
        assert attack.set_params(random_state=8, gamma=3.0) is attack
    assert attack.seed == 8 and attack.gamma == 3.0 and "random_state" not in attack.get_params()


def test_random_state_gives_the_same_scores():
    # label-only draws its perturbed queries from the seed: the alias must draw the same ones
    from mialab.attacks import LabelOnlyAttack

    X = np.random.default_rng(0).random((5, 4))
    with pytest.warns(DeprecationWarning):
        old = LabelOnlyAttack(n_queries=3, noise=0.2, random_state=9)
    new = LabelOnlyAttack(n_queries=3, noise=0.2, seed=9)
    np.testing.assert_array_equal(old.query_seeds(X), new.query_seeds(X))
    assert not np.array_equal(new.query_seeds(X), LabelOnlyAttack(n_queries=3, noise=0.2, seed=10).query_seeds(X))


def test_an_attack_seed_in_attack_params_wins_under_either_name():
    """A seed the user gives an attack in attack_params is used, whichever name: the audit's
    derived seed is only the default (random_state, the deprecated name, warns)."""
    import mialab
    from mialab.training import TrainConfig

    tiny = dict(n_target_train=200, n_shadows=2, n_bootstrap=20, training=TrainConfig(epochs=2), quiet=True)
    a = mialab.audit("digits", attacks=["shadow"], attack_params={"shadow": {"seed": 3}}, **tiny)
    with pytest.warns(DeprecationWarning, match="use seed"):
        b = mialab.audit("digits", attacks=["shadow"], attack_params={"shadow": {"random_state": 3}}, **tiny)
    assert a.attack("shadow").params["seed"] == b.attack("shadow").params["seed"] == 3
    assert np.array_equal(a.attack("shadow").scores, b.attack("shadow").scores)
