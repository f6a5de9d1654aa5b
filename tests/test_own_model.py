"""audit_model: auditing models mialab did not train, in every form and at every access level."""

from __future__ import annotations

import numpy as np
import pytest

import mialab
from mialab import TrainConfig
from mialab.api import audit_model

RECIPE = TrainConfig(epochs=3)


@pytest.fixture(scope="module")
def digits():
    from mialab.pipeline.threat import audit_split

    data = mialab.load_dataset("digits")
    split = audit_split(data, mialab.AuditConfig())  # the split mialab.audit draws for seed 0
    X, y = data.X, data.y

    def part(ids):
        return X[ids], y[ids]

    return dict(data=data, split=split, members=part(split.members), nonmembers=part(split.nonmembers),
                population=part(split.pool), train=part(split.target_train))


@pytest.fixture(scope="module")
def forest(digits):
    from sklearn.ensemble import RandomForestClassifier

    from _seeds import seeded

    return RandomForestClassifier(n_estimators=30, random_state=seeded(0)).fit(*digits["train"])


def _kw(d, **extra):
    return dict(population=d["population"], n_shadows=2, n_target_train=d["split"].target_train.size,
                n_bootstrap=50, quiet=True, **extra)


def test_torch_module_through_audit_model_equals_the_built_in_pipeline(digits):
    from mialab.pipeline.compose import train_target

    attacks = ("threshold", "loss", "entropy", "shadow", "lira-offline", "rmia-offline")
    config = mialab.AuditConfig(attacks=attacks, n_shadows=2, n_bootstrap=50, training=RECIPE)
    built_in = mialab.audit(config=config, quiet=True)
    target = train_target(digits["data"], built_in.split, training=RECIPE, seed=0)  # as audit() trained it
    own = audit_model(target.model, digits["members"], digits["nonmembers"], access="logits", model_factory="mlp",
                      training=RECIPE, attacks=list(attacks), **_kw(digits))
    for name in attacks:
        np.testing.assert_array_equal(own.attack(name).scores, built_in.attack(name).scores)
        assert own.metrics[name].auc == built_in.metrics[name].auc
    assert own.target["train_accuracy"] == pytest.approx(float((target.model(
        __import__("torch").as_tensor(digits["members"][0])).argmax(1).numpy() == digits["members"][1]).mean()))


def test_sklearn_estimator_trains_its_shadows_by_cloning(digits, forest, tmp_path):
    res = audit_model(forest, digits["members"], digits["nonmembers"], out=tmp_path / "rf", **_kw(digits))
    # every default attack that fits "probabilities" ran, shadows cloned from the forest
    assert {"threshold", "loss", "shadow", "label-only"} <= set(res.metrics)
    assert len(res.shadows) == 2 and res.model_counts["trained"] == 2
    assert res.config["model_form"] == "sklearn" and res.config["access"] == "probabilities"
    assert res.target["train_accuracy"] == 1.0  # a forest memorises its training set
    # and it leaks: the loss attack's AUC on this forest setup measured 0.802 +- 0.012 (SD over 12
    # seeds, tests/test_examples_own.py's random-forest example), so 0.6 lies 16 SDs below it
    assert res.metrics["loss"].auc > 0.6
    assert (tmp_path / "rf" / "results.json").is_file()
    md = (tmp_path / "rf" / "report.md").read_text()  # the report of a user's model says what was assumed
    assert "| access level (what attacks see) | probabilities |" in md and "| model form | sklearn" in md
    assert "the known members supplied" in md


def test_callable_returning_probabilities_and_top_k_access(digits, forest):
    calls = []

    def api(X):
        calls.append(len(X))
        return forest.predict_proba(X)

    res = audit_model(api, digits["members"], digits["nonmembers"], access="top_k", top_k=1,
                      train_fn=lambda X, y, seed: _forest(X, y, seed), **_kw(digits))
    assert set(res.metrics) == {"threshold", "label-only"}  # what a top-1 API allows
    assert calls and res.config["model_output"] == "probabilities"
    with pytest.raises(ValueError, match=r"attack 'loss' needs access 'probabilities', more than the declared "
                                         r"access='top_k'"):
        audit_model(api, digits["members"], digits["nonmembers"], access="top_k", top_k=1, attacks=["loss"],
                    train_fn=lambda X, y, seed: _forest(X, y, seed), **_kw(digits))


def _forest(X, y, seed):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=30, random_state=seed % 2**32).fit(X, y)


def test_black_box_label_api(digits, forest):
    # labels only and no population: the rule-based correctness attack, needing no shadows
    res = audit_model(lambda X: forest.predict(X), digits["members"], digits["nonmembers"], access="label",
                      n_bootstrap=50, quiet=True)
    assert set(res.metrics) == {"correctness"}
    acc_m, acc_n = res.target["train_accuracy"], res.target["test_accuracy"]
    assert res.metrics["correctness"].accuracy == pytest.approx(0.5 + (acc_m - acc_n) / 2)
    # with a population and a train_fn, the label-only attack runs on label answers
    res = audit_model(lambda X: forest.predict(X), digits["members"], digits["nonmembers"], access="label",
                      train_fn=lambda X, y, seed: (lambda Z, m=_forest(X, y, seed): m.predict(Z)),
                      attacks=["label-only"], **_kw(digits))
    assert 0.0 <= res.metrics["label-only"].auc <= 1.0
    with pytest.raises(ValueError, match="returns labels only: it cannot be audited at access='probabilities'"):
        audit_model(lambda X: forest.predict(X), digits["members"], digits["nonmembers"],
                    access="probabilities", attacks=["correctness"], n_bootstrap=50, quiet=True)


def test_bad_input_is_refused_with_what_was_received(digits, forest):
    m, n = digits["members"], digits["nonmembers"]
    with pytest.raises(ValueError, match=r"members and nonmembers overlap: 3 non-member row\(s\)"):
        audit_model(forest, m, (np.concatenate([n[0], m[0][:3]]), np.concatenate([n[1], m[1][:3]])), quiet=True)
    with pytest.raises(ValueError, match=r"members: y must have one label per row of X \(120\), got 119"):
        audit_model(forest, (m[0], m[1][:-1]), n, quiet=True)
    with pytest.raises(ValueError, match="same input shape"):
        audit_model(forest, m, (n[0][:, :10], n[1]), quiet=True)
    with pytest.raises(ValueError, match=r"output='probabilities' declared, but .* row\(s\) do not sum to 1"):
        audit_model(lambda X: forest.predict_proba(X) * 2, m, n, output="probabilities", attacks=["correctness"],
                    quiet=True)
    with pytest.raises(ValueError, match="negative values"):
        audit_model(lambda X: forest.predict_proba(X) - 0.5, m, n, output="probabilities",
                    attacks=["correctness"], quiet=True)
    with pytest.raises(ValueError, match="model's logits must not contain NaN|NaN"):
        audit_model(lambda X: np.full((len(X), 10), np.nan), m, n, output="logits", attacks=["correctness"],
                    quiet=True)
    with pytest.raises(ValueError, match=r"must have shape \(\d+, 10\)"):
        audit_model(lambda X: np.zeros((len(X), 3)), m, n, output="logits", attacks=["correctness"], quiet=True)
    with pytest.raises(ValueError, match="at least 4 records"):
        audit_model(forest, m, n, population=(digits["population"][0][:3], digits["population"][1][:3]),
                    attacks=["loss"], quiet=True)
    with pytest.raises(ValueError, match="population overlaps the members"):
        audit_model(forest, m, n, population=m, quiet=True)
    with pytest.raises(ValueError, match="access must be one of"):
        audit_model(forest, m, n, access="everything", quiet=True)
    with pytest.raises(ValueError, match="needs top_k"):
        audit_model(forest, m, n, access="top_k", attacks=["threshold"], **_kw(digits))
    with pytest.raises(ValueError, match="calibrates on shadow models, which need a population"):
        audit_model(forest, m, n, attacks=["loss"], quiet=True)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        audit_model(object(), m, n, quiet=True)


def test_online_attacks_on_an_own_model(digits, forest):
    res = audit_model(forest, digits["members"], digits["nonmembers"], attacks=["lira-online", "rmia-online"],
                      n_reference_models=2, **_kw(digits))
    assert len(res.reference_models) == 2
    m = res.reference_membership
    assert np.isin(res.split.evaluated, m.record_ids).all() and np.isin(m.record_ids, res.split.pool).any()
    assert (m.matrix[:, np.isin(m.record_ids, res.split.evaluated)].sum(axis=0) == 1).all()


def test_target_outputs_are_checked_before_any_training(digits, forest):
    calls = []

    def train_fn(X, y, seed):
        calls.append(seed)
        return _forest(X, y, seed)

    with pytest.raises(ValueError, match="access='logits' needs a model that returns logits"):
        audit_model(forest, digits["members"], digits["nonmembers"], access="logits", train_fn=train_fn,
                    attacks=["loss"], **_kw(digits))
    assert calls == []


def test_audit_model_takes_the_audit_configuration():
    """What audit() can be told through AuditConfig, audit_model() can too where it applies: attack
    parameters (a class-wise loss attack), FPR targets, shadow counts, the seed (issue 13)."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    model = LogisticRegression(max_iter=300).fit(X[:200], y[:200])
    config = mialab.AuditConfig(attacks=["loss"], attack_params={"loss": {"classwise": True}}, fpr_targets=(0.1,),
                                n_shadows=2, n_bootstrap=20, seed=3)
    res = mialab.audit_model(model, (X[:200], y[:200]), (X[200:400], y[200:400]),
                             population=(X[400:1200], y[400:1200]), config=config, quiet=True)
    assert res.attack("loss").params["classwise"] is True
    assert res.config["fpr_targets"] == [0.1] and res.config["seed"] == 3 and len(res.shadows) == 2
    assert [t.fpr for t in res.metrics["loss"].tpr_at_fpr] == [0.1]
