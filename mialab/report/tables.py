"""The summary table printed at the end of a run."""

from __future__ import annotations

from mialab.results import AuditResults

__all__ = ["summary_table"]


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


def summary_table(results: AuditResults) -> str:
    """A plain-text table: one row per attack, then the target's utility and the caveats.

    TPR at a target FPR is marked ``*`` when the evaluated non-members are too few to resolve
    that FPR (fewer than ``1 / fpr``).
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
            mark = "" if e.resolvable else "*"
            unreliable |= not e.resolvable
            row += f"{_pct(e.tpr) + mark:>12}"
        lines.append(row)
    if results.metrics:
        worst = results.worst_case()
        lines += ["", f"worst case: {worst.attack}, AUC {worst.auc:.3f} "
                      f"[{worst.auc_interval[0]:.3f}, {worst.auc_interval[1]:.3f}] "
                      f"on {worst.n_members} members / {worst.n_nonmembers} non-members"
                      + (f" (highest of {len(results.metrics)} attacks, picked after the fact: its "
                         "interval does not account for that choice)" if len(results.metrics) > 1 else "")]
    if unreliable:
        n = next(iter(results.metrics.values())).n_nonmembers
        lines.append(f"* resolves only FPR 0: {n} non-members cannot measure an FPR below 1/{n}")
    lines.append("acc / prec / recall / adv (TPR - FPR) use each attack's threshold, chosen on shadow models.")
    lines.append("Attack numbers are lower bounds on leakage under the threat model assumed "
                 "(attacker knows the training recipe, gets logits or labels).")
    return "\n".join(lines)
