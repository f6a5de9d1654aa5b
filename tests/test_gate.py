"""The privacy gate: budget syntax, the exit codes (kept 0, broken 3, unresolvable 4), the
Bonferroni level, the configuration (TOML round trip) and the command line.

Most tests build AttackResult objects from synthetic scores, so no model is trained. Two score
vectors give exact oracles whatever the bootstrap draws: a *perfect* attack (members 1,
non-members 0: AUC 1 and TPR 1 at every FPR in every replicate) and a *blind* one (every score
equal: AUC 1/2 and TPR 0 at every FPR below 1 in every replicate).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from _seeds import seeded
from _stats import FALSE_FAILURE
import mialab
from mialab.cli import build_parser, config_from_args, main
from mialab.config import AuditConfig
from mialab.metrics.gate import (EXIT_BROKEN, EXIT_KEPT, EXIT_UNRESOLVABLE, Budget, check_budgets, gate_lines,
                         parse_budget, parse_budgets)
from mialab.metrics import min_nonmembers_for_fpr, tpr_key
from mialab.metrics.family import family_intervals
from mialab.types import AttackResult


def _attack(name: str, scores, member, ids=None) -> AttackResult:
    member = np.asarray(member, dtype=bool)
    ids = np.arange(member.size) if ids is None else np.asarray(ids)
    return AttackResult(name, ids, np.zeros(member.size, dtype=np.int64), np.asarray(scores, dtype=np.float64),
                        member, 0.5)


def _member(n_pos: int, n_neg: int) -> np.ndarray:
    return np.arange(n_pos + n_neg) < n_pos


def _perfect(member) -> AttackResult:
    return _attack("perfect", member.astype(np.float64), member)


def _blind(member, name: str = "blind") -> AttackResult:
    return _attack(name, np.zeros(member.size), member)


# -- syntax -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, metric, fpr, limit, canonical", [
    ("auc>0.6", "auc", None, 0.6, "auc>0.6"),
    ("  auc > 0.6 ", "auc", None, 0.6, "auc>0.6"),
    ("auc>0.5", "auc", None, 0.5, "auc>0.5"),  # chance itself: "fail if it leaks measurably"
    ("tpr@1%>0.05", "tpr", 0.01, 0.05, "tpr@1%>0.05"),
    ("tpr @ 1 % > 0.05", "tpr", 0.01, 0.05, "tpr@1%>0.05"),
    ("tpr@0.01>0.05", "tpr", 0.01, 0.05, "tpr@1%>0.05"),
    ("tpr@0.1%>0.01", "tpr", 0.001, 0.01, "tpr@0.1%>0.01"),
    ("tpr@.3%>0.01", "tpr", 0.003, 0.01, "tpr@0.3%>0.01"),  # the double nearest 0.003, not 0.3 / 100
    ("tpr@1e-3>0.01", "tpr", 0.001, 0.01, "tpr@0.1%>0.01"),
    ("tpr@10%>0.1", "tpr", 0.1, 0.1, "tpr@10%>0.1"),  # the limit may equal the FPR (chance)
    ("auc>1", "auc", None, 1.0, "auc>1.0"),
])
def test_parse_budget_accepts_the_documented_forms(text, metric, fpr, limit, canonical):
    b = parse_budget(text)
    assert (b.metric, b.fpr, b.limit, str(b)) == (metric, fpr, limit, canonical)
    assert parse_budget(str(b)) == b  # the canonical text reads back to the same budget
    assert b.key == ("auc" if fpr is None else tpr_key(fpr))


@pytest.mark.parametrize("text, match", [
    ("auc>=0.6", "'>=' is not supported"),
    ("auc<0.6", "'<' is not supported"),
    ("auc=0.6", "metric>limit"),
    ("auc>0.6>0.7", "metric>limit"),
    ("AUC>0.6", "unknown metric 'AUC'"),
    ("acc>0.6", "unknown metric 'acc'"),
    ("tpr>0.05", "unknown metric 'tpr'"),
    ("tpr@>0.05", "unknown metric"),
    ("tpr@-1%>0.05", "unknown metric"),
    ("tpr@1>0.5", r"in \(0, 1\) \(write a percentage with %"),
    ("tpr@100%>0.5", r"in \(0, 1\)"),
    ("tpr@0%>0.5", r"in \(0, 1\)"),
    ("auc>", "not a plain number"),
    ("auc>high", "not a plain number"),
    ("auc>nan", "not a plain number"),
    ("auc>inf", "not a plain number"),
    ("auc>-0.1", "not a plain number"),
    ("auc>1.5", r"in \[0, 1\]"),
    ("tpr@1%>2", r"in \[0, 1\]"),
    ("auc>0.4", "at least 0.5"),
    ("tpr@10%>0.05", "at least its FPR 0.1"),
    ("", "metric>limit"),
])
def test_parse_budget_refuses_anything_else_naming_the_argument(text, match):
    with pytest.raises(ValueError, match=match) as err:
        parse_budget(text)
    assert str(err.value).startswith("fail_if")
    with pytest.raises(ValueError, match=r"^--fail-if"):
        parse_budget(text, name="--fail-if")


def test_parse_budget_type_errors_and_lists():
    for bad in (0.6, None, b"auc>0.6", ["auc>0.6"]):
        with pytest.raises(TypeError, match="fail_if must be a budget string"):
            parse_budget(bad)
    with pytest.raises(TypeError, match=r"a list of budgets such as \['auc>0.6'\], got the string"):
        parse_budgets("auc>0.6")
    with pytest.raises(TypeError, match="list of budgets"):
        parse_budgets({"auc": 0.6})
    with pytest.raises(ValueError, match="repeat a budget"):
        parse_budgets(["tpr@1%>0.05", "tpr@0.01>0.05"])  # the same budget written twice
    with pytest.raises(ValueError, match=r"^fail_if\[1\]"):
        parse_budgets(["auc>0.6", "auc>=0.7"])
    assert parse_budgets(["auc>0.6", Budget("tpr", 0.01, 0.05)]) == (Budget("auc", None, 0.6),
                                                                     Budget("tpr", 0.01, 0.05))
    with pytest.raises(ValueError, match="Budget: an auc limit must be at least 0.5"):
        Budget("auc", None, 0.3)  # built by hand: the same checks
    with pytest.raises(ValueError, match="Budget: an auc budget has no FPR"):
        Budget("auc", 0.01, 0.6)


# -- outcomes and exit codes -----------------------------------------------------------------------
def test_kept_and_broken_exact_oracles():
    # non-members enough to resolve TPR at 10% FPR under the library's rule, whatever it is
    member = _member(60, min_nonmembers_for_fpr(0.1))
    blind, perfect = _blind(member), _perfect(member)

    kept = check_budgets([blind], ["auc>0.5", "tpr@10%>0.1"], n_bootstrap=100, seed=1)
    assert kept.exit_code == EXIT_KEPT == 0
    auc, tpr = kept.outcomes
    assert (auc.outcome, auc.bound, auc.excess, auc.worst_attack) == ("kept", 0.5, 0.0, "blind")
    assert (tpr.outcome, tpr.bound, tpr.estimate) == ("kept", 0.0, 0.0)
    assert tpr.excess == pytest.approx(-0.1)
    assert auc.message.startswith("kept auc>0.5: corrected lower bound") and "margin 0.000" in auc.message

    broken = check_budgets([blind, perfect], ["auc>0.9", "tpr@10%>0.5", "auc>1"], n_bootstrap=100, seed=1)
    assert broken.exit_code == EXIT_BROKEN == 3
    a, t, never = broken.outcomes
    assert (a.outcome, a.bound, a.worst_attack, a.estimate) == ("broken", 1.0, "perfect", 1.0)
    assert a.excess == pytest.approx(0.1) and (t.outcome, t.bound) == ("broken", 1.0)
    assert t.excess == pytest.approx(0.5)
    assert never.outcome == "kept"  # a bound equal to the limit does not exceed it
    assert a.message == ("BROKEN auc>0.9: corrected lower bound of the worst AUC 1.000 (worst attack perfect, "
                         "estimate 1.000) exceeds the budget 0.9 by 0.100")
    assert [o.budget for o in broken.broken] == [Budget("auc", None, 0.9), Budget("tpr", 0.1, 0.5)]
    lines = broken.lines()
    assert lines[0].startswith("privacy gate FAILED: 2 of 3 budget(s) broken (exit 3")
    assert lines[1:] == [f"  {o.message}" for o in broken.outcomes]


def test_unresolvable_tpr_budget_exit_codes():
    need = min_nonmembers_for_fpr(0.01)
    member = _member(50, need - 1)  # one non-member short of resolving TPR at 1% FPR
    blind, perfect = _blind(member), _perfect(member)

    gate = check_budgets([blind], ["auc>0.6", "tpr@1%>0.05"], n_bootstrap=50, seed=2)
    assert gate.exit_code == EXIT_UNRESOLVABLE == 4
    kept, unres = gate.outcomes
    assert kept.outcome == "kept"
    assert (unres.outcome, unres.bound, unres.interval, unres.excess) == ("unresolvable", None, None, None)
    assert (unres.n_nonmembers, unres.min_nonmembers) == (need - 1, need)
    assert unres.message == (f"UNRESOLVABLE tpr@1%>0.05: TPR at 1% FPR needs at least {need} non-members for "
                             f"a number and this audit has {need - 1}; the budget could not be checked")
    assert gate.summary.startswith("privacy gate INCOMPLETE: 1 of 2 budget(s) could not be checked (exit 4")

    # a broken budget decides the exit code even when another could not be checked
    assert check_budgets([blind, perfect], ["tpr@1%>0.05", "auc>0.9"], n_bootstrap=50, seed=2).exit_code == 3
    # only unresolvable budgets: nothing to bootstrap, still exit 4
    only = check_budgets([perfect], ["tpr@1%>0.05"], n_bootstrap=50, seed=2)
    assert only.exit_code == 4 and only.budget_level == 0.95

    # exactly the required number of non-members: resolvable, and computed although the audit
    # reports other FPRs
    member = _member(50, need)
    enough = check_budgets([_perfect(member)], ["tpr@1%>0.05"], n_bootstrap=20, seed=2, fpr_targets=(0.001,))
    assert enough.outcomes[0].outcome == "broken" and enough.outcomes[0].reported is False


def test_to_dict_is_json_and_gate_lines_read_it_back():
    member = _member(40, min_nonmembers_for_fpr(0.1))
    gate = check_budgets([_blind(member), _perfect(member)], ["auc>0.9", "tpr@0.01%>0.5"],
                         fpr_targets=(0.1,), n_bootstrap=30, seed=3)
    d = json.loads(json.dumps(gate.to_dict(), allow_nan=False))
    assert d["exit_code"] == 3 and d["budget_level"] == 0.975 and d["attacks"] == ["blind", "perfect"]
    assert (d["n_members"], d["n_nonmembers"], d["n_bootstrap"], d["seed"]) == (40, member.size - 40, 30, 3)
    first, second = d["budgets"]
    assert first == {"budget": "auc>0.9", "metric": "auc", "fpr": None, "limit": 0.9, "outcome": "broken",
                     "bound": 1.0, "interval": [1.0, 1.0], "excess": first["excess"], "worst_attack": "perfect",
                     "estimate": 1.0, "n_nonmembers": member.size - 40, "min_nonmembers": None,
                     "reported": True, "message": gate.outcomes[0].message}
    assert second["outcome"] == "unresolvable" and second["reported"] is False and second["fpr"] == 0.0001
    assert gate_lines(d) == gate.lines()


def test_a_real_leak_breaks_and_no_leak_keeps():
    """Binormal scores, 500 members and 500 non-members.

    Leak: members N(1.5, 1), non-members N(0, 1): AUC = Phi(1.5 / sqrt 2) = 0.856. The budget
    auc>0.7 is broken unless the corrected lower bound falls to 0.7; that bound is the lower
    1.25% percentile of bootstrap AUCs, about estimate - 2.5 sd (sd <= 0.02 at this size), so it
    needs an estimate below 0.75, 5.3 sd of the estimate (Hanley-McNeil sd 0.012 here, < 0.02)
    below the truth: probability below Phi(-5.3) = 6e-8 < 1e-4.

    No leak: three attacks with members and non-members both N(0, 1). The corrected lower bound
    never exceeds the worst attack's own lower percentile (the union in family_intervals), which
    lies below its bootstrap median, itself within 0.01 of its estimate; the estimate exceeds
    0.59 with probability below 3 * P(Z > 0.09 / sd) with the exact null sd
    sqrt(1001 / (12 * 500 * 500)) = 0.0183: 3 * Phi(-4.9) = 1.4e-6 < 1e-4.
    """
    rng = np.random.default_rng(seeded(11))
    member = _member(500, 500)
    n_sd = math.sqrt(1001 / (12 * 500 * 500))
    assert 3 * stats.norm.sf(0.09 / n_sd) < FALSE_FAILURE and stats.norm.cdf(-5.3) < FALSE_FAILURE
    leak = _attack("leak", rng.normal(size=1000) + 1.5 * member, member)
    nulls = [_attack(f"null{k}", rng.normal(size=1000), member) for k in range(3)]
    broken = check_budgets(nulls + [leak], ["auc>0.7"], n_bootstrap=400, seed=seeded(12))
    assert broken.exit_code == 3 and broken.outcomes[0].worst_attack == "leak"
    kept = check_budgets(nulls, ["auc>0.6"], n_bootstrap=400, seed=seeded(13))
    assert kept.exit_code == 0


def test_bonferroni_level_over_the_budgets():
    rng = np.random.default_rng(seeded(21))
    member = _member(300, max(300, min_nonmembers_for_fpr(0.1)))
    n = member.size
    attacks = [_attack("a", rng.normal(size=n) + 0.5 * member, member),
               _attack("b", rng.normal(size=n) + 0.3 * member, member)]
    scores = {a.attack: a.scores for a in attacks}
    for budgets in (["auc>0.5"], ["auc>0.5", "tpr@10%>0.1"], ["auc>0.5", "tpr@10%>0.1", "auc>0.9"]):
        gate = check_budgets(attacks, budgets, fpr_targets=(0.1,), n_bootstrap=300, seed=5)
        level = 1 - 0.05 / len(budgets)
        assert gate.budget_level == pytest.approx(level) and gate.level == 0.95
        oracle = family_intervals(scores, member, fpr_targets=(0.1,), level=gate.budget_level, n_bootstrap=300,
                                  seed=5)
        plain = family_intervals(scores, member, fpr_targets=(0.1,), level=0.95, n_bootstrap=300, seed=5)
        for o in gate.outcomes:
            assert o.interval == oracle[o.budget.key].corrected  # exactly the family's corrected interval
            assert o.bound <= plain[o.budget.key].corrected[0]  # never looser than the uncorrected level
    # an unresolvable budget still counts: the level is fixed before the data are seen
    few = _member(30, min_nonmembers_for_fpr(0.001) - 1)
    gate = check_budgets([_blind(few)], ["auc>0.6", "tpr@0.1%>0.5"], n_bootstrap=20, seed=0)
    assert gate.budget_level == pytest.approx(0.975)


def test_attacks_are_aligned_by_record_id_and_checked():
    rng = np.random.default_rng(seeded(31))
    member = _member(100, 100)
    ids = np.arange(1000, 1200)
    s1, s2 = rng.normal(size=200) + member, rng.normal(size=200) + 0.5 * member
    a1, a2 = _attack("one", s1, member, ids), _attack("two", s2, member, ids)
    perm = rng.permutation(200)
    a2p = _attack("two", s2[perm], member[perm], ids[perm])  # the same scores, in another record order
    same = check_budgets([a1, a2], ["auc>0.5"], n_bootstrap=100, seed=4)
    shuffled = check_budgets([a1, a2p], ["auc>0.5"], n_bootstrap=100, seed=4)
    assert shuffled.to_dict() == same.to_dict()

    other = _attack("two", s2, member, ids + 1)
    with pytest.raises(ValueError, match="must score the same records"):
        check_budgets([a1, other], ["auc>0.6"], seed=0)
    flipped = _attack("two", s2, ~member, ids)
    with pytest.raises(ValueError, match="agree on membership"):
        check_budgets([a1, flipped], ["auc>0.6"], seed=0)
    with pytest.raises(ValueError, match="repeat an attack name"):
        check_budgets([a1, a1], ["auc>0.6"], seed=0)
    with pytest.raises(ValueError, match="at least one AttackResult"):
        check_budgets([], ["auc>0.6"], seed=0)
    with pytest.raises(TypeError, match="AttackResult objects"):
        check_budgets([s1], ["auc>0.6"], seed=0)
    with pytest.raises(ValueError, match="at least one budget"):
        check_budgets([a1], [], seed=0)
    with pytest.raises(TypeError, match=r"budgets must be a list of budgets such as \['auc>0.6'\], got the string"):
        check_budgets([a1], "auc>0.6", seed=0)
    with pytest.raises(ValueError, match=r"^budgets\[0\]"):
        check_budgets([a1], ["auc>=0.6"], seed=0)
    with pytest.raises(ValueError, match="members and non-members"):
        check_budgets([_attack("x", s1, np.ones(200, bool))], ["auc>0.6"], seed=0)
    for kw, match in (({"level": 1.0}, "level"), ({"n_bootstrap": 0}, "n_bootstrap"),
                      ({"fpr_targets": "0.01"}, "fpr_targets")):
        with pytest.raises((TypeError, ValueError), match=match):
            check_budgets([a1], ["auc>0.6"], seed=0, **kw)
    with pytest.raises(TypeError, match="seed"):
        check_budgets([a1], ["auc>0.6"], seed=None)


# -- configuration ---------------------------------------------------------------------------------
def test_config_fail_if_validated_and_round_trips_through_toml_and_json(tmp_path):
    assert AuditConfig().fail_if == () and AuditConfig().to_dict()["fail_if"] == []
    toml = tmp_path / "gate.toml"
    toml.write_text('attacks = ["loss"]\nfail_if = ["auc>0.6", "tpr@1% > 0.05"]\n')
    cfg = AuditConfig.from_toml(toml)
    assert cfg.fail_if == ("auc>0.6", "tpr@1% > 0.05")  # kept as written; parse_budget reads both
    d = cfg.to_dict()
    assert d["fail_if"] == ["auc>0.6", "tpr@1% > 0.05"]
    assert AuditConfig.from_dict(json.loads(json.dumps(d))) == cfg  # as saved in config.json
    assert AuditConfig(fail_if=["auc>0.6"]) == AuditConfig(fail_if=("auc>0.6",))

    for text, error, match in (
        ('fail_if = "auc>0.6"\n', TypeError,
         r"fail_if must be a list of budgets such as \['auc>0.6'\], got the string"),
        ('fail_if = ["auc>0.6", "auc>=0.7"]\n', ValueError, r"fail_if\[1\] must be a budget"),
        ('fail_if = [0.6]\n', TypeError, "fail_if must hold budget strings"),
        ('fail_if = ["auc>0.6", "auc>0.6"]\n', ValueError, "repeat a budget"),
    ):
        toml.write_text(text)
        with pytest.raises(error, match=match) as err:
            AuditConfig.from_toml(toml)
        assert str(toml) in str(err.value)


# -- command line ------------------------------------------------------------------------------------
def test_cli_fail_if_flags_replace_the_toml_budgets(tmp_path):
    toml = tmp_path / "audit.toml"
    toml.write_text('fail_if = ["auc>0.6"]\n')
    parser = build_parser()
    assert config_from_args(parser.parse_args(["audit", "--config", str(toml)])).fail_if == ("auc>0.6",)
    args = parser.parse_args(["audit", "--config", str(toml), "--fail-if", "auc>0.7", "--fail-if", "tpr@1%>0.05"])
    assert config_from_args(args).fail_if == ("auc>0.7", "tpr@1%>0.05")
    assert config_from_args(parser.parse_args(["audit"])).fail_if == ()


def test_cli_refuses_bad_budgets_before_training(tmp_path, capsys):
    never = tmp_path / "never"
    assert main(["audit", "--fail-if", "auc>=0.6", "--out", str(never), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mialab audit: error: --fail-if[0] must be a budget") and "'>=' is not supported" in err
    assert not never.exists()
    assert main(["audit-model", "--sklearn", str(tmp_path / "missing.skops"), "--data", str(tmp_path / "no.npz"),
                 "--fail-if", "tpr@1>0.5", "--out", str(never), "--quiet"]) == 2
    assert "--fail-if[0]: the FPR of a tpr budget must lie in (0, 1)" in capsys.readouterr().err
    toml = tmp_path / "gated.toml"
    toml.write_text('fail_if = ["auc>0.6"]\n')
    assert main(["defend", "--config", str(toml), "--out", str(never), "--quiet"]) == 2
    assert "mialab defend does not check privacy budgets" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # defend has no --fail-if flag at all
        main(["defend", "--fail-if", "auc>0.6"])
    assert e.value.code == 2
    assert not never.exists()


def test_audit_model_checks_the_budgets_of_its_config(tmp_path):
    """audit_model takes fail_if from its configuration (an AuditConfig or a TOML file) and
    checks it itself, as audit() does: the CLI has no gate step of its own. A correctness attack
    on a logistic regression of 150 digits members: its AUC interval is far below 1, so the
    budget 'auc>0.999' is kept (exit 0), and the gate is the one the verdict's bootstrap gives."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    model = LogisticRegression(max_iter=200).fit(X[:150], y[:150])
    toml = tmp_path / "own.toml"
    toml.write_text('attacks = ["correctness"]\nfail_if = ["auc>0.999"]\nn_bootstrap = 50\nseed = 4\n')
    res = mialab.audit_model(model, (X[:150], y[:150]), (X[150:300], y[150:300]), config=toml, quiet=True)
    assert res.gate is not None and res.gate["exit_code"] == 0
    assert [b["budget"] for b in res.gate["budgets"]] == ["auc>0.999"]
    assert res.config["seed"] == 4 and res.config["n_bootstrap"] == 50
    same = mialab.audit_model(model, (X[:150], y[:150]), (X[150:300], y[150:300]), quiet=True,
                              config=mialab.AuditConfig.from_toml(toml))
    assert same.gate == res.gate
    with pytest.raises(ValueError, match="pass either config= or the settings \\['seed'\\]"):
        mialab.audit_model(model, (X[:150], y[:150]), (X[150:300], y[150:300]), config=toml, seed=1)
    with pytest.raises(ValueError, match="member_fraction=0.3 \\(the members are given\\)"):
        mialab.audit_model(model, (X[:150], y[:150]), (X[150:300], y[150:300]),
                           config=mialab.AuditConfig(member_fraction=0.3))


def test_cli_audit_with_budgets_exits_with_the_gate_code(tmp_path, capsys):
    """A tiny digits audit: a loss attack on a 2-epoch MLP (AUC near 0.5, its lower bound far
    below 0.99), and a TPR budget at 0.1% FPR, which the ~120 non-members of this split cannot
    resolve (it needs at least 1,000): kept + unresolvable = exit 4."""
    out = tmp_path / "run"
    rc = main(["audit", "--attacks", "loss", "--shadows", "1", "--epochs", "2", "--bootstrap", "50",
               "--no-defenses", "--no-cache", "--out", str(out), "--quiet",
               "--fail-if", "auc>0.99", "--fail-if", "tpr@0.1%>0.5"])
    printed = capsys.readouterr().out
    assert rc == 4, printed
    assert "privacy gate INCOMPLETE: 1 of 2 budget(s) could not be checked (exit 4" in printed
    assert "  kept auc>0.99: corrected lower bound of the worst AUC" in printed
    assert "  UNRESOLVABLE tpr@0.1%>0.5: TPR at 0.1% FPR needs at least" in printed
    assert printed.index("privacy gate") < printed.index("run directory:")  # after the results table
    # the run directory is written whatever the gate says, with the gate in results.json
    stored = json.loads((out / "results.json").read_text())["privacy_gate"]
    assert stored["exit_code"] == 4 and [b["outcome"] for b in stored["budgets"]] == ["kept", "unresolvable"]
    assert "\n".join(gate_lines(stored)) in printed
    assert json.loads((out / "config.json").read_text())["fail_if"] == ["auc>0.99", "tpr@0.1%>0.5"]
