"""Tests of mialab.config.AuditConfig: defaults, refusals that list the valid choices, and the
dict / TOML / JSON round trips."""

from __future__ import annotations

import json

import pytest

from mialab.attacks import attack_names
from mialab.config import DEFAULT_ATTACKS, AuditConfig
from mialab.training import TrainConfig


def test_defaults_are_valid():
    cfg = AuditConfig()
    assert cfg.attacks == DEFAULT_ATTACKS
    assert set(cfg.attacks) <= set(attack_names())
    assert cfg.training == TrainConfig()
    assert cfg.seed == 0 and cfg.n_shadows >= 1
    assert isinstance(cfg.fpr_targets, tuple) and all(type(f) is float for f in cfg.fpr_targets)


def test_sequences_are_normalised_to_tuples():
    cfg = AuditConfig(attacks=["loss", "entropy"], fpr_targets=[0.01, 0.5])
    assert cfg.attacks == ("loss", "entropy")
    assert cfg.fpr_targets == (0.01, 0.5)


def test_unknown_attack_refused_listing_known_names():
    with pytest.raises(ValueError, match="unknown") as info:
        AuditConfig(attacks=("loss", "lira"))
    msg = str(info.value)
    assert "'lira'" in msg
    for name in attack_names():
        assert repr(name) in msg


def test_repeated_attack_refused():
    with pytest.raises(ValueError, match=r"must not repeat.*\['loss', 'entropy', 'loss'\]"):
        AuditConfig(attacks=("loss", "entropy", "loss"))


def test_attacks_as_string_or_empty_refused():
    with pytest.raises(TypeError, match="attacks.*'loss'"):
        AuditConfig(attacks="loss")
    with pytest.raises(ValueError, match="at least one attack"):
        AuditConfig(attacks=())


def test_attack_params_for_attack_not_run_refused():
    ok = AuditConfig(attacks=("loss", "shadow"), attack_params={"shadow": {"per_class": True}})
    assert ok.attack_params["shadow"] == {"per_class": True}
    with pytest.raises(ValueError, match=r"not run: \['entropy'\].*\['loss', 'shadow'\]"):
        AuditConfig(attacks=("loss", "shadow"), attack_params={"entropy": {}})


@pytest.mark.parametrize(
    "kwargs, exc, field",
    [
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"seed": True}, TypeError, "seed"),
        ({"n_shadows": 0}, ValueError, "n_shadows"),
        ({"n_shadows": True}, ValueError, "n_shadows"),
        ({"n_bootstrap": 0}, ValueError, "n_bootstrap"),
        ({"n_attacker_pool": 3}, ValueError, "n_attacker_pool"),
        ({"n_attacker_pool": True}, ValueError, "n_attacker_pool"),
        ({"training": {"epochs": 3}}, TypeError, "training"),
    ],
)
def test_other_refusals_name_the_field(kwargs, exc, field):
    with pytest.raises(exc, match=field):
        AuditConfig(**kwargs)


def test_from_dict_with_nested_training_dict():
    cfg = AuditConfig.from_dict({
        "dataset": "digits",
        "model": "mlp",
        "model_params": {"width": 32},
        "training": {"epochs": 3, "optimizer": "sgd", "lr": 0.05, "early_stopping_patience": 2},
        "attacks": ["loss", "shadow"],
        "attack_params": {"shadow": {"per_class": True}},
        "fpr_targets": [0.01, 0.1],
        "n_validation": 20,
        "seed": 7,
    })
    assert cfg.training == TrainConfig(epochs=3, optimizer="sgd", lr=0.05, early_stopping_patience=2)
    assert cfg.attacks == ("loss", "shadow") and cfg.fpr_targets == (0.01, 0.1)
    assert cfg.model_params == {"width": 32} and cfg.seed == 7
    # a TrainConfig instance is accepted as is
    assert AuditConfig.from_dict({"training": cfg.training, "n_validation": 20}).training is cfg.training


def test_from_dict_refuses_unknown_keys_listing_known_settings():
    with pytest.raises(ValueError, match=r"unknown audit setting\(s\) \['n_shadow'\]") as info:
        AuditConfig.from_dict({"n_shadow": 3})
    msg = str(info.value)
    for known in ("n_shadows", "attacks", "training", "seed", "fpr_targets"):
        assert repr(known) in msg
    with pytest.raises(ValueError, match=r"unknown training setting\(s\) \['epoch'\].*'epochs'"):
        AuditConfig.from_dict({"training": {"epoch": 3}})
    with pytest.raises(ValueError, match=r"TrainConfig\.lr"):
        AuditConfig.from_dict({"training": {"lr": 0}})
    with pytest.raises(TypeError, match="attacks"):
        AuditConfig.from_dict({"attacks": "loss"})


def test_from_toml_round_trip(tmp_path):
    path = tmp_path / "audit.toml"
    path.write_text(
        '# an audit written by hand\n'
        'dataset = "digits"\n'
        'model = "mlp"\n'
        'attacks = ["loss", "entropy", "shadow"]\n'
        'n_shadows = 4\n'
        'n_attacker_pool = 400\n'
        'member_fraction = 0.25\n'
        'n_validation = 50\n'
        'seed = 123\n'
        'n_bootstrap = 200\n'
        'fpr_targets = [0.01, 0.1]\n'
        '\n'
        '[model_params]\n'
        'width = 64\n'
        'dropout = 0.1\n'
        '\n'
        '[training]\n'
        'epochs = 5\n'
        'optimizer = "sgd"\n'
        'lr = 0.05\n'
        'weight_decay = 1e-4\n'
        'early_stopping_patience = 2\n'
        '\n'
        '[attack_params.shadow]\n'
        'per_class = true\n',
        encoding="utf-8",
    )
    cfg = AuditConfig.from_toml(path)
    expected = AuditConfig(
        dataset="digits", model="mlp", model_params={"width": 64, "dropout": 0.1},
        training=TrainConfig(epochs=5, optimizer="sgd", lr=0.05, weight_decay=1e-4,
                             early_stopping_patience=2),
        attacks=("loss", "entropy", "shadow"), attack_params={"shadow": {"per_class": True}},
        n_shadows=4, n_attacker_pool=400, member_fraction=0.25, n_validation=50, seed=123, n_bootstrap=200,
        fpr_targets=(0.01, 0.1),
    )
    assert cfg == expected
    # and back through to_dict
    assert AuditConfig.from_dict(cfg.to_dict()) == cfg
    assert AuditConfig.from_toml(str(path)) == cfg  # str paths too


def test_from_toml_missing_file_and_bad_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        AuditConfig.from_toml(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("sed = 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"\['sed'\].*'seed'"):
        AuditConfig.from_toml(bad)


def test_to_dict_is_json_serialisable_and_round_trips():
    cfg = AuditConfig(
        model_params={"width": 16}, attacks=("loss", "shadow"),
        attack_params={"shadow": {"per_class": True}},
        training=TrainConfig(epochs=2, early_stopping_patience=1), n_validation=20, seed=5,
    )
    d = cfg.to_dict()
    assert d["training"] == cfg.training.to_dict()
    assert d["attacks"] == ["loss", "shadow"] and isinstance(d["fpr_targets"], list)
    text = json.dumps(d, sort_keys=True)  # raises if anything is not JSON-serialisable
    assert AuditConfig.from_dict(json.loads(text)) == cfg
    # to_dict is a copy: editing it does not reach the frozen config
    d["model_params"]["width"] = 999
    d["attack_params"]["shadow"]["n_shadows"] = 999
    assert cfg.model_params == {"width": 16} and cfg.attack_params["shadow"] == {"per_class": True}


def test_replace_revalidates():
    cfg = AuditConfig()
    assert cfg.replace(seed=3).seed == 3
    with pytest.raises(ValueError, match="unknown"):
        cfg.replace(attacks=("nope",))


@pytest.mark.parametrize("kwargs, match", [
    (dict(fpr_targets=(0.01, 1.5)), "fpr_targets"),
    (dict(fpr_targets=()), "fpr_targets"),
    (dict(training=TrainConfig(early_stopping_patience=2)), "n_validation"),
    (dict(attacks=("loss",), attack_params={"loss": {"classwize": True}}), "classwize"),
])
def test_settings_that_would_fail_after_training_are_refused_up_front(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AuditConfig(**kwargs)
