"""The plain-text summary of one audit, printed at the end of a run (:meth:`AuditResults.summary`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mialab.results import AuditResults

__all__ = ["summary_text"]


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


def summary_text(results: AuditResults) -> str:
    """A plain-text table: one row per attack, then the target's utility and the caveats.

    TPR at a target FPR (strict convention: FPR below the target) is shown as a number only when
    the evaluated non-members resolve it (at least ``10 / fpr``); otherwise as ``<=`` its exact
    upper bound, marked ``*``. A second table gives each attack's precision (PPV) at the
    membership priors of :data:`mialab.metrics.PPV_PRIORS`.
    """
    ds, tgt = results.dataset, results.target
    sizes = results.split.sizes()
    lines = [
        f"mialab audit: {ds['name']} ({ds['n_records']} records, {ds['n_classes']} classes), "
        f"model {results.config['model']}, seed {results.config['seed']}",
        f"split: {sizes['members']} members / {sizes['nonmembers']} non-members evaluated; "
        f"target trained on {sizes['members'] + sizes['train_rest']}; attacker pool {sizes['pool']}"
        + (f" (shadows drew from {results.shadow_membership.n_records})"
           if results.shadow_membership is not None and results.shadow_membership.n_records != sizes['pool'] else "")
        + f"; test {sizes['test']}",
        f"target: train acc {_pct(tgt['train_accuracy'])}, test acc "
        + (_pct(tgt['test_accuracy']) if tgt['test_accuracy'] is not None else "n/a")
        + (f", gap {100 * tgt['generalization_gap']:.1f} pts" if tgt['generalization_gap'] is not None else "")
        + f"; {len(results.shadows)} shadow models",
        "",
    ]
    fprs = [e.fpr for e in next(iter(results.metrics.values())).tpr_at_fpr] if results.metrics else []
    header = f"{'attack':<22}{'AUC [95% CI]':<22}{'acc':>7}{'prec':>7}{'recall':>7}{'adv':>7}" + "".join(
        f"{'TPR@' + format(100 * f, 'g') + '%':>12}" for f in fprs)
    lines += [header, "-" * len(header)]
    unreliable = False
    for name, m in results.metrics.items():
        row = (f"{name:<22}{m.auc:.3f} [{m.auc_interval[0]:.3f}, {m.auc_interval[1]:.3f}]  "
               f"{_pct(m.accuracy):>7}{_pct(m.precision):>7}{_pct(m.recall):>7}{m.advantage:7.3f}")
        for e in m.tpr_at_fpr:
            # too few non-members for a number: the exact upper bound, marked
            cell = _pct(e.tpr) if e.resolvable else f"<={100 * e.interval[1]:.1f}%*"
            unreliable |= not e.resolvable
            row += f"{cell:>12}"
        lines.append(row)
    priors = [p.prior for p in next(iter(results.metrics.values())).ppv] if results.metrics else []
    if priors:
        head = f"{'attack':<22}" + "".join(f"{'PPV if ' + format(100 * p, 'g') + '% members':>26}" for p in priors)
        lines += ["", head, "-" * len(head)]
        for name, m in results.metrics.items():
            cells = ["flags no one" if p.ppv is None else
                     f"{100 * p.ppv:.1f}% [{100 * p.interval[0]:.1f}, {100 * p.interval[1]:.1f}]" for p in m.ppv]
            lines.append(f"{name:<22}" + "".join(f"{c:>26}" for c in cells))
    if results.metrics:
        worst = results.worst_case()
        lines += ["", f"worst case: {worst.attack}, AUC {worst.auc:.3f} "
                      f"[{worst.auc_interval[0]:.3f}, {worst.auc_interval[1]:.3f}] "
                      f"on {worst.n_members} members / {worst.n_nonmembers} non-members"]
        v = results.verdict
        if v is not None:
            lo, hi = v["auc"]["corrected"]
            among = f"the highest of {v['n_attacks']} attacks" if v["n_attacks"] > 1 else "one attack"
            lines.append(f"corrected for picking {among}: AUC interval [{lo:.3f}, {hi:.3f}] -> "
                         + (f"LEAKS (lower bound {lo:.3f} > 0.5)" if v["leaks"] else
                            "no leak detectable at this sample size (not proof of privacy)"))
    if unreliable:
        n = next(iter(results.metrics.values())).n_nonmembers
        lines.append(f"* not resolvable with {n} non-members (a number needs 10/FPR): an exact upper bound "
                     "at the interval's level")
    if priors:
        lines.append("PPV: precision of each attack's threshold if members were that share of those queried "
                     "(exact interval).")
    lines.append("acc / prec / recall / adv (TPR - FPR) use each attack's threshold, chosen on shadow models.")
    lines.append("Attack numbers are lower bounds on leakage under the threat model assumed "
                 "(attacker knows the training recipe, gets logits or labels).")
    return "\n".join(lines)
