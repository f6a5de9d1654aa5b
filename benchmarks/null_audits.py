"""Null audits: does the audit say "no leak" when there is none?

    python benchmarks/null_audits.py            # digits and Fashion-MNIST, ~13 min (2 shared cores)
    python benchmarks/null_audits.py --quick    # a smoke run on digits, under a minute
    python benchmarks/null_audits.py --datasets digits --targets 4 --splits 10

A *null audit* audits a model on "members" B and "non-members" C that are both drawn from records
the model never saw: a target is trained on A, shadow models on the attacker's population P, and
B and C come from the unseen records U (A, P, U disjoint). Nothing distinguishes B from C, so
every attack's AUC is 1/2 in expectation, the per-attack 95% intervals should exclude 1/2 about
5% of the time, and the family-wise "leaks" verdict (mialab.metrics.family: the corrected lower
bound of the maximum AUC over the attacks above 1/2) at most 5% of the time.

**Exact null.** When B and C are a uniformly random partition of records the models never saw
(the ``random`` design), their scores are exchangeable given the trained models: whatever the
scores are, every assignment of the labels is equally likely, and the AUC follows the
permutation law of the Mann-Whitney statistic, with the exact (tie-corrected) variance of
tests/_stats.py. So the spread of the AUC over random null audits must match the exact null SD,
whatever the attack, provided each record's score does not depend on the labels.

**Slices.** The ``contiguous`` design draws B and C as two adjacent blocks of the unseen records
in the dataset's own order (which block is "members" is a coin flip), as slicing a dataset
``X[a:b]``, ``X[b:c]`` does. If the order carries structure, the blocks differ in distribution
and the null is no longer exchangeable. A "slice detector" (cross-validated logistic regression
telling B's records from C's by their features, ignoring every model) measures how different
they are: about 1/2 for random splits; on digits, adjacent blocks are told apart (AUC ~0.65).

**What is reused (stated, as the comparison depends on it).** Per dataset, ``--targets``
targets (one seed each: its own A / P / U draw, target, 8 shadows); each target serves
``--splits`` random and ``--contiguous-splits`` contiguous (B, C) splits, each a full null audit
(every attack's AUC with its bootstrap interval, the family-wise verdict), and ``--spread-splits``
more of each design where only the AUC and its exact null SD are computed (the spread test needs
many more splits than the intervals can afford). The attacks fitted on the shadows' view of P
alone, whose score of a record is a function of that record's outputs (threshold, loss,
entropy, modified entropy, shadow, label-only), are scored once on all of U and the scores of
B and C are read off; the reference attacks (lira-offline, rmia-offline), whose fit includes the
evaluated records' columns (LiRA's pooled standard deviation runs over them), are refitted on
every split. Label-only's perturbed copies are built once and sent to every model
(:func:`label_queries`). On the first split of the first ``--verify-targets`` targets every
attack is also run through the library's own ``mialab.pipeline.runner.run_attack`` on exactly that split
and the scores are compared (``verification``: equal to the last bit so far).

The split, shadows and attacks are those of ``mialab.audit_model`` (the user-model audit):
members B, non-members C, population P, ``n_target_train`` = |A|; shadows from
``target_like_shadow_membership``, trained by ``train_shadows`` with the target's recipe;
attack seeds and the paired bootstrap seed as in ``attack_all``.

Writes benchmarks/results/null_audits.json and prints a markdown table for RESULTS.md.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # two cores shared with other jobs: one thread everywhere

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from _stats import null_auc_variance  # noqa: E402  (the suite's exact, tie-corrected null variance)

import mialab  # noqa: E402
from mialab.attacks import AttackerData, LabelOnlyAttack, make_attack  # noqa: E402
from mialab.attacks.label_only import perturb  # noqa: E402
from mialab.pipeline.compose import train_shadows  # noqa: E402
from mialab.pipeline.runner import run_attack  # noqa: E402
from mialab.pipeline.threat import target_like_shadow_membership  # noqa: E402
from mialab.config import DEFAULT_ATTACKS, AuditConfig  # noqa: E402
from mialab.fleet import Job, train_jobs  # noqa: E402
from mialab.metrics import evaluate  # noqa: E402
from mialab.metrics.family import family_intervals, leaks  # noqa: E402
from mialab.seeding import derive_seed, numpy_rng  # noqa: E402
from mialab.training import TrainConfig, logit_query  # noqa: E402
from mialab.types import AttackResult, AuditSplit, LabelQueries, MembershipMatrix, ModelOutputs  # noqa: E402

#: per dataset: model, target / population / unseen sizes, members = non-members per audit.
#: digits: 150 + 150 evaluated records, the size of the old observation (exact null SD 0.033);
#: the whole dataset is used (U = the 747 records left).
#: targets x (random, contiguous) splits: 200 random null audits per dataset by default; plus
#: ``spread_splits`` per target and design where only the AUC and its exact null SD are computed.
SETTINGS: dict[str, dict[str, Any]] = {
    "digits": dict(model="mlp", model_params={}, n_target=450, n_pool=600, n_unseen=None, n_eval=150,
                   targets=10, random_splits=20, contiguous_splits=10, spread_splits=100),
    "fashion-mnist": dict(model="mlp", model_params={"width": 128}, n_target=1000, n_pool=1400,
                          n_unseen=3000, n_eval=500, targets=8, random_splits=25, contiguous_splits=3,
                          spread_splits=30),
}
N_SHADOWS = 8
LEVEL = 0.95
_Z = float(stats.norm.isf((1 - LEVEL) / 2))  # 1.96


# ----------------------------------------------------------------------------------------------
# one target and its attacker side
# ----------------------------------------------------------------------------------------------
@dataclass
class NullTarget:
    """A trained target with its shadows, and every attack's scores on the unseen records."""

    seed: int
    A: np.ndarray  # the target's training records
    P: np.ndarray  # the attacker's population
    U: np.ndarray  # unseen records: every null (B, C) is drawn from them
    target_query: Any
    shadow_queries: list
    membership: MembershipMatrix
    fixed_scores: dict[str, np.ndarray]  # attack -> scores indexed by record id (NaN outside U)
    fixed_thresholds: dict[str, float]
    ref_obs: dict[tuple, tuple[list[ModelOutputs], ModelOutputs]]  # observation key -> (shadows', target's)
    ref_cols: np.ndarray  # record ids those observations cover: membership columns, then U
    summary: dict[str, Any]


def _attack(name: str, seed: int):
    # the attack's seed as mialab.pipeline.runner.attack_all derives it from the audit's seed
    return make_attack(name, seed=derive_seed(seed, "attack", name) % 2**32)


def _subset(o: ModelOutputs, pos: np.ndarray) -> ModelOutputs:
    return ModelOutputs(record_ids=o.record_ids[pos], labels=o.labels[pos], logits=o.logits[pos])


def build_target(data, cfg: dict[str, Any], seed: int, attacks: tuple[str, ...]) -> NullTarget:
    """Draw A, P, U, train the target on A and the shadows on P (as audit_model does), score
    the attacks fitted on P alone once on all of U, and observe the models for the reference
    attacks (refitted per split by :func:`split_scores`)."""
    t0 = time.perf_counter()
    perm = numpy_rng(derive_seed(seed, "null-audit", "records")).permutation(data.n_records)
    n_t, n_p = cfg["n_target"], cfg["n_pool"]
    n_u = cfg["n_unseen"] or data.n_records - n_t - n_p
    A, P, U = np.sort(perm[:n_t]), np.sort(perm[n_t:n_t + n_p]), np.sort(perm[n_t + n_p:n_t + n_p + n_u])
    training = TrainConfig()
    target = train_jobs(data, [Job(train_ids=A, seed=derive_seed(seed, "target"))], model=cfg["model"],
                        model_params=cfg["model_params"], training=training, defense=None, test_ids=U)[0]
    # the split of audit_model: members and non-members (here a reservoir: all of U), the population
    empty = np.zeros(0, np.int64)
    half = U.size // 2
    reservoir = AuditSplit(members=U[:half], train_rest=empty, validation=empty, nonmembers=U[half:], test=empty,
                           pool=P, n_records=data.n_records, seed=seed)
    membership = target_like_shadow_membership(reservoir, N_SHADOWS, seed=seed, target_size=n_t)
    if int(membership.matrix[0].sum()) != n_t:
        raise ValueError(f"population of {n_p} too small for shadows of {n_t} records")
    shadows, membership = train_shadows(data, reservoir, membership, model=cfg["model"],
                                        model_params=cfg["model_params"], training=training, seed=seed)
    t_train = time.perf_counter() - t0
    target_query = logit_query(target.model)
    shadow_queries = [logit_query(s.model) for s in shadows]

    fixed_scores, fixed_thresholds, ref_obs = {}, {}, {}
    ref_cols = np.concatenate([membership.record_ids, U])
    cache: dict = {}
    for name in attacks:
        attack = _attack(name, seed)
        if isinstance(attack, LabelOnlyAttack):  # the perturbed copies built once for all models
            cols = membership.record_ids
            shadow_obs = label_queries(attack, shadow_queries, data.X[cols], data.y[cols], cols)
            attack.fit(AttackerData(observations=tuple(shadow_obs), membership=membership))
            scores = np.full(data.n_records, np.nan)
            scores[U] = attack.score_samples(label_queries(attack, [target_query], data.X[U], data.y[U], U)[0])
            fixed_scores[name], fixed_thresholds[name] = scores, float(attack.threshold_)
            continue
        if getattr(attack, "per_record", False):
            key = attack.observation_key(data.X.ndim)
            if key not in ref_obs:  # LiRA and RMIA observe alike: query the models once
                obs = [attack.observe(q, data.X[ref_cols], data.y[ref_cols], ref_cols) for q in shadow_queries]
                all_ids = np.concatenate([ref_cols, np.setdiff1d(P, ref_cols)])  # RMIA's population is P
                ref_obs[key] = (obs, attack.observe(target_query, data.X[all_ids], data.y[all_ids], all_ids))
            continue
        res = run_attack(attack, target_query, shadow_queries, data, reservoir, membership, cache=cache)
        scores = np.full(data.n_records, np.nan)
        scores[res.record_ids] = res.scores
        fixed_scores[name], fixed_thresholds[name] = scores, float(res.threshold)
    summary = {"seed": seed, "train_accuracy": target.train_accuracy, "test_accuracy": target.test_accuracy,
               "shadow_train_accuracy": float(np.mean([s.train_accuracy for s in shadows])),
               "n_target": int(A.size), "n_population": int(P.size), "n_unseen": int(U.size),
               "train_s": t_train, "score_s": time.perf_counter() - t0 - t_train}
    return NullTarget(seed, A, P, U, target_query, shadow_queries, membership, fixed_scores, fixed_thresholds,
                      ref_obs, ref_cols, summary)


def label_queries(attack: LabelOnlyAttack, queries: list, X: np.ndarray, y: np.ndarray,
                  ids: np.ndarray) -> list[LabelQueries]:
    """``attack.observe(q, X, y, ids)`` for every ``q`` in ``queries``, with each chunk of
    perturbed copies built once and sent to every model (observe rebuilds them per model, which
    dominates a Fashion-MNIST audit's label-only cost). Same copies (per-record seeds from
    ``attack.query_seeds``), same column order: the original, then ``n_queries`` per level.
    Checked against run_attack by the verification."""
    levels = attack.noise_levels
    seeds = attack.query_seeds(X)
    chunk = max(1, (1 << 22) // ((1 + attack.n_queries) * int(np.prod(X.shape[1:]))))
    columns: list[list[list[np.ndarray]]] = [[[] for _ in levels] for _ in queries]
    for li, level in enumerate(levels):
        for i in range(0, X.shape[0], chunk):
            batch = perturb(X[i:i + chunk], n_queries=attack.n_queries, noise=level, max_shift=attack.max_shift,
                            flip=attack.flip, record_seeds=seeds[li, i:i + chunk])
            if li > 0:  # the original is queried once, with the first level
                batch = batch[:, 1:]
            flat = batch.reshape((-1,) + X.shape[1:])
            for k, q in enumerate(queries):
                out = np.asarray(q(flat))
                labels = out.argmax(axis=-1) if out.ndim == 2 else out
                columns[k][li].append(labels.reshape(batch.shape[0], batch.shape[1]))
    return [LabelQueries(record_ids=ids, labels=y,
                         predictions=np.concatenate([np.concatenate(c) for c in per_model], axis=1).astype(np.int64))
            for per_model in columns]


def split_scores(nt: NullTarget, data, name: str, ids: np.ndarray) -> tuple[np.ndarray, float]:
    """The attack's scores of the evaluated records ``ids`` (members then non-members) and its
    threshold: read off for the attacks fitted on P alone, refitted for the reference attacks
    exactly as run_attack fits an offline per-record attack (the scored records' columns added,
    all OUT)."""
    if name in nt.fixed_scores:
        return nt.fixed_scores[name][ids], nt.fixed_thresholds[name]
    attack = _attack(name, nt.seed)
    shadow_obs, target_obs = nt.ref_obs[attack.observation_key(data.X.ndim)]
    where = {int(r): i for i, r in enumerate(target_obs.record_ids)}
    n_m = nt.membership.record_ids.size
    u_pos = np.searchsorted(nt.U, ids)
    cols = np.concatenate([np.arange(n_m), n_m + u_pos])
    fit_membership = MembershipMatrix(
        matrix=np.hstack([nt.membership.matrix, np.zeros((nt.membership.n_models, ids.size), bool)]),
        record_ids=nt.ref_cols[cols])
    attack.fit(AttackerData(observations=tuple(_subset(o, cols) for o in shadow_obs), membership=fit_membership))
    context = {}
    population = attack.population_ids(exclude=ids)
    if population.size:
        context["population"] = _subset(target_obs, np.array([where[int(r)] for r in population]))
    scores = attack.score_samples(_subset(target_obs, np.array([where[int(r)] for r in ids])), **context)
    return scores, float(attack.threshold_)


def verify(nt: NullTarget, data, split: AuditSplit, scores: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Run every attack through mialab.pipeline.runner.run_attack on ``split`` and compare with the shortcut."""
    out, cache = {}, {}
    for name, s in scores.items():
        res = run_attack(_attack(name, nt.seed), nt.target_query, nt.shadow_queries, data, split, nt.membership,
                         cache=cache)
        out[name] = {"max_abs_score_diff": float(np.max(np.abs(res.scores - s))),
                     "auc_diff": float(abs(mialab.metrics.roc_auc(res.scores, res.is_member)
                                           - mialab.metrics.roc_auc(s, res.is_member)))}
    return out


# ----------------------------------------------------------------------------------------------
# null splits and their metrics
# ----------------------------------------------------------------------------------------------
def draw_split(U: np.ndarray, n: int, design: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Members B and non-members C, ``n`` each, from the unseen records ``U`` (sorted ids)."""
    if design == "random":
        pick = rng.choice(U, size=2 * n, replace=False)
        return np.sort(pick[:n]), np.sort(pick[n:])
    start = int(rng.integers(0, U.size - 2 * n + 1))
    first, second = U[start:start + n], U[start + n:start + 2 * n]
    return (first, second) if rng.random() < 0.5 else (second, first)


def slice_detector_auc(data, B: np.ndarray, C: np.ndarray, seed: int) -> float:
    """Cross-validated AUC of a logistic regression telling B's records from C's by their
    features alone (no model involved): about 1/2 when B and C are exchangeable."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    X = np.concatenate([data.X[B], data.X[C]]).reshape(B.size + C.size, -1)
    lab = np.r_[np.ones(B.size, bool), np.zeros(C.size, bool)]
    folds = StratifiedKFold(5, shuffle=True, random_state=seed % 2**32)
    p = cross_val_predict(LogisticRegression(C=0.1, max_iter=2000), X, lab, cv=folds, method="predict_proba")[:, 1]
    return float(mialab.metrics.roc_auc(p, lab))


def null_audit(nt: NullTarget, data, cfg: dict[str, Any], design: str, index: int, attacks: tuple[str, ...], *,
               n_bootstrap: int, fpr_targets: tuple[float, ...], detector: bool,
               verify_here: bool) -> dict[str, Any]:
    """One null audit: draw (B, C), every attack's AUC and 95% interval, the family-wise verdict."""
    rng = numpy_rng(derive_seed(nt.seed, "null-audit", design, index))
    B, C = draw_split(nt.U, cfg["n_eval"], design, rng)
    ids = np.concatenate([B, C])
    member = np.r_[np.ones(B.size, bool), np.zeros(C.size, bool)]
    boot_seed = derive_seed(nt.seed, "null-audit", design, index, "bootstrap")  # one per audit: paired
    row: dict[str, Any] = {"target": nt.seed, "design": design, "split": index, "attacks": {}}
    scores = {}
    for name in attacks:
        s, thr = split_scores(nt, data, name, ids)
        scores[name] = s
        m = evaluate(AttackResult(attack=name, record_ids=ids, labels=data.y[ids], scores=s, is_member=member,
                                  threshold=thr), fpr_targets=fpr_targets, n_bootstrap=n_bootstrap, seed=boot_seed)
        row["attacks"][name] = {"auc": m.auc, "interval": [float(v) for v in m.auc_interval],
                                "null_sd": float(np.sqrt(null_auc_variance(s, member))),
                                "n_distinct": int(np.unique(s).size)}
    # the verdict the old report gave: some attack's interval lies above 1/2
    row["any_interval_above"] = any(a["interval"][0] > 0.5 for a in row["attacks"].values())
    fam = family_intervals(scores, member, fpr_targets=fpr_targets, level=LEVEL, n_bootstrap=n_bootstrap,
                           seed=boot_seed)["auc"]
    row["leaks"] = bool(leaks(fam))
    row["worst"] = fam.worst
    row["corrected"] = [float(v) for v in fam.corrected]
    if detector:
        row["slice_detector_auc"] = slice_detector_auc(data, B, C, boot_seed)
    if verify_here:
        split = AuditSplit(members=B, train_rest=np.zeros(0, np.int64), validation=np.zeros(0, np.int64),
                           nonmembers=C, test=np.zeros(0, np.int64), pool=nt.P, n_records=data.n_records)
        row["verification"] = verify(nt, data, split, scores)
    return row


def spread(nt: NullTarget, data, cfg: dict[str, Any], design: str, n_splits: int,
           attacks: tuple[str, ...]) -> dict[str, list]:
    """AUC and exact null SD ``(n_splits, n_attacks)`` of more null splits, without intervals:
    the spread of the AUC around 1/2 against the exact null SD, on many more splits than the
    full null audits can afford (the same scores; splits drawn from their own seeds)."""
    auc, sd0 = np.zeros((n_splits, len(attacks))), np.zeros((n_splits, len(attacks)))
    member = np.r_[np.ones(cfg["n_eval"], bool), np.zeros(cfg["n_eval"], bool)]
    for i in range(n_splits):
        B, C = draw_split(nt.U, cfg["n_eval"], design, numpy_rng(derive_seed(nt.seed, "null-spread", design, i)))
        ids = np.concatenate([B, C])
        for j, name in enumerate(attacks):
            s = split_scores(nt, data, name, ids)[0]
            auc[i, j] = mialab.metrics.roc_auc(s, member)
            sd0[i, j] = np.sqrt(null_auc_variance(s, member))
    return {"auc": auc.tolist(), "null_sd": sd0.tolist()}


def _moments(part: dict[str, list], attacks: tuple[str, ...]) -> dict[str, Any]:
    """What one target's spread splits leave in the JSON (the per-split arrays would be ~2 MB):
    per attack, the number of splits, the mean squared deviation of the AUC from 1/2, the mean
    squared exact null SD and the mean of z^2 and z^4, enough to recompute every ratio."""
    auc, sd0 = np.asarray(part["auc"]), np.asarray(part["null_sd"])
    out: dict[str, Any] = {"n_splits": int(auc.shape[0])}
    for j, name in enumerate(attacks):
        z2 = ((auc[:, j] - 0.5) / sd0[:, j]) ** 2
        out[name] = {"mean_sq_dev": float(np.mean((auc[:, j] - 0.5) ** 2)),
                     "mean_null_var": float(np.mean(sd0[:, j] ** 2)),
                     "mean_z2": float(z2.mean()), "mean_z4": float(np.mean(z2 ** 2))}
    return out


def _columns(rows: list[dict[str, Any]], attacks: tuple[str, ...]) -> dict[str, Any]:
    """The null audits of one design as columns, one row per audit (attack columns in
    ``attacks`` order; floats to 6 decimals, far below every SD here), for the JSON."""
    def per_attack(key: str, j: int | None = None) -> list:
        return [[round(r["attacks"][a][key] if j is None else r["attacks"][a][key][j], 6) for a in attacks]
                for r in rows]

    out: dict[str, Any] = {"attacks": list(attacks), "target": [r["target"] for r in rows],
                           "split": [r["split"] for r in rows], "auc": per_attack("auc"),
                           "interval_low": per_attack("interval", 0), "interval_high": per_attack("interval", 1),
                           "exact_null_sd": per_attack("null_sd"), "n_distinct_scores": per_attack("n_distinct"),
                           "leaks": [r["leaks"] for r in rows], "worst": [r["worst"] for r in rows],
                           "corrected": [[round(v, 6) for v in r["corrected"]] for r in rows]}
    out["slice_detector_auc"] = [round(r["slice_detector_auc"], 6) if "slice_detector_auc" in r else None
                                 for r in rows]
    return out


def _dumps(result: dict[str, Any]) -> str:
    """JSON with every list of plain values on one line (the per-audit columns stay readable)."""
    import re

    text = json.dumps(result, indent=1)
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)


def summarise_spread(parts: list[tuple[Any, dict[str, list]]], attacks: tuple[str, ...]) -> dict[str, Any]:
    """Per attack: RMS deviation of the AUC from 1/2, RMS exact null SD, their ratio with a
    95% interval from a bootstrap over targets, and the mean z^2 (1 under the exact null)."""
    targets = np.concatenate([[t] * len(p["auc"]) for t, p in parts]) if parts else np.zeros(0)
    auc = np.concatenate([np.asarray(p["auc"]) for _, p in parts])
    sd0 = np.concatenate([np.asarray(p["null_sd"]) for _, p in parts])
    out: dict[str, Any] = {"n_splits": int(auc.shape[0]), "n_targets": len(parts), "attacks": {}}
    for j, name in enumerate(attacks):
        z2 = ((auc[:, j] - 0.5) / sd0[:, j]) ** 2
        out["attacks"][name] = {
            "rms_dev_from_half": float(np.sqrt(np.mean((auc[:, j] - 0.5) ** 2))),
            "exact_null_sd": float(np.sqrt(np.mean(sd0[:, j] ** 2))),
            "sd_ratio": float(np.sqrt(np.mean((auc[:, j] - 0.5) ** 2) / np.mean(sd0[:, j] ** 2))),
            "sd_ratio_interval": _sd_ratio_interval(auc[:, j], sd0[:, j], targets, seed=j),
            "mean_z2": float(z2.mean()), "mean_z2_se": float(z2.std(ddof=1) / np.sqrt(z2.size))}
    return out


# ----------------------------------------------------------------------------------------------
# summaries
# ----------------------------------------------------------------------------------------------
def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for a rate k / n."""
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def _rate(flags: list[bool]) -> dict[str, Any]:
    k, n = int(sum(flags)), len(flags)
    return {"k": k, "n": n, "rate": k / n if n else float("nan"), "interval": list(clopper_pearson(k, n))}


def _sd_ratio_interval(aucs: np.ndarray, null_sd: np.ndarray, targets: np.ndarray, seed: int,
                       n_rep: int = 2000) -> list[float]:
    """95% interval of SD(AUC) / RMS(null SD) by a bootstrap over targets (the audits of one
    target share its models, so targets are the independent units); deviations are taken from
    1/2, the null mean."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(targets == t) for t in np.unique(targets)]
    ratios = []
    for _ in range(n_rep):
        pick = np.concatenate([groups[g] for g in rng.integers(0, len(groups), len(groups))])
        ratios.append(np.sqrt(np.mean((aucs[pick] - 0.5) ** 2) / np.mean(null_sd[pick] ** 2)))
    return [float(v) for v in np.quantile(ratios, [0.025, 0.975])]


def summarise(rows: list[dict[str, Any]], attacks: tuple[str, ...]) -> dict[str, Any]:
    targets = np.array([r["target"] for r in rows])
    out: dict[str, Any] = {"n_audits": len(rows), "n_targets": int(np.unique(targets).size), "attacks": {}}
    for name in attacks:
        auc = np.array([r["attacks"][name]["auc"] for r in rows])
        sd0 = np.array([r["attacks"][name]["null_sd"] for r in rows])
        lo = np.array([r["attacks"][name]["interval"][0] for r in rows])
        hi = np.array([r["attacks"][name]["interval"][1] for r in rows])
        z = (auc - 0.5) / sd0
        # within-target spread (around each target's mean) and between-target spread of the means
        means = {t: auc[targets == t].mean() for t in np.unique(targets)}
        within = auc - np.array([means[t] for t in targets])
        out["attacks"][name] = {
            "mean_auc": float(auc.mean()),
            "auc_sd": float(auc.std(ddof=1)),
            "rms_dev_from_half": float(np.sqrt(np.mean((auc - 0.5) ** 2))),
            "exact_null_sd": float(np.sqrt(np.mean(sd0 ** 2))),
            "sd_ratio": float(np.sqrt(np.mean((auc - 0.5) ** 2) / np.mean(sd0 ** 2))),
            "sd_ratio_interval": _sd_ratio_interval(auc, sd0, targets, seed=len(rows)),
            "within_target_sd": float(np.sqrt((within ** 2).sum() / max(1, auc.size - len(means)))),
            "between_target_sd_of_means": float(np.std(list(means.values()), ddof=1)) if len(means) > 1 else None,
            "interval_excludes_half": _rate(list((lo > 0.5) | (hi < 0.5))),
            "interval_above_half": _rate(list(lo > 0.5)),
            "exact_test_rejects": _rate(list(np.abs(z) > _Z)),  # two-sided, normal approx. to the exact law
            "mean_halfwidth_over_null": float(np.mean((hi - lo) / 2 / (_Z * sd0))),
            "min_distinct_scores": int(min(r["attacks"][name]["n_distinct"] for r in rows)),
        }
    # every (audit, attack) pair together; the attacks of one audit are correlated, so the interval
    # comes from a bootstrap over audits, not from the binomial
    excl = np.array([[a["interval"][0] > 0.5 or a["interval"][1] < 0.5 for a in r["attacks"].values()] for r in rows])
    rng = np.random.default_rng(len(rows))
    boot = [excl[rng.integers(0, len(rows), len(rows))].mean() for _ in range(2000)]
    out["all_attacks_interval_excludes_half"] = {"k": int(excl.sum()), "n": int(excl.size),
                                                 "rate": float(excl.mean()),
                                                 "interval": [float(v) for v in np.quantile(boot, [0.025, 0.975])],
                                                 "interval_method": "bootstrap over audits"}
    out["any_interval_above_half"] = _rate([r["any_interval_above"] for r in rows])
    out["leaks"] = _rate([r["leaks"] for r in rows])
    worst = [r["worst"] for r in rows]
    out["worst_attack_counts"] = {a: worst.count(a) for a in attacks if worst.count(a)}
    det = [r["slice_detector_auc"] for r in rows if "slice_detector_auc" in r]
    if det:
        out["slice_detector_auc"] = {"n": len(det), "mean": float(np.mean(det)), "sd": float(np.std(det, ddof=1))
                                     if len(det) > 1 else None, "max": float(np.max(det))}
    return out


def _pct(r: dict[str, Any]) -> str:
    return f"{100 * r['rate']:.1f}% ({r['k']}/{r['n']}) [{100 * r['interval'][0]:.1f}, {100 * r['interval'][1]:.1f}]"


def markdown(result: dict[str, Any]) -> str:
    """Tables for RESULTS.md: per dataset and design, each attack's rates and spread; then the verdicts."""
    lines = []
    for ds, d in result["datasets"].items():
        n = d["settings"]["n_eval"]
        for design, s in d["designs"].items():
            lines.append(f"\n**{ds}, {design} null splits**: {s['n_audits']} null audits over {s['n_targets']} "
                         f"targets, {n} members + {n} non-members each\n")
            lines.append("| attack | 95% intervals excluding 0.5 [exact 95% CI] | exact permutation test rejects "
                         "(nominal 5%) | AUC SD | exact-null SD | ratio [95% CI] | interval half-width / "
                         "(1.96 x exact-null SD) |")
            lines.append("|---|---|---|---|---|---|---|")
            for name, a in s["attacks"].items():
                lines.append(f"| {name} | {_pct(a['interval_excludes_half'])} | {_pct(a['exact_test_rejects'])} | "
                             f"{a['rms_dev_from_half']:.4f} | {a['exact_null_sd']:.4f} | {a['sd_ratio']:.2f} "
                             f"[{a['sd_ratio_interval'][0]:.2f}, {a['sd_ratio_interval'][1]:.2f}] | "
                             f"{a['mean_halfwidth_over_null']:.3f} |")
            pairs = s["all_attacks_interval_excludes_half"]
            lines.append(f"| all {len(s['attacks'])} (audit, attack) pairs | {_pct(pairs)} (CI: bootstrap over "
                         "audits) | | | | | |")
    for ds, d in result["datasets"].items():
        if not d.get("spread"):
            continue
        lines.append(f"\n**{ds}: AUC spread against the exact null** (AUC and exact null SD only, on "
                     + ", ".join(f"{s['n_splits']} {design}" for design, s in d["spread"].items())
                     + " null splits; RMS deviation of the AUC from 0.5 / RMS exact null SD, 95% CI by a "
                       "bootstrap over targets)\n")
        designs = list(d["spread"])
        lines.append("| attack | exact-null SD | " + " | ".join(f"{x}: AUC SD | {x}: ratio [95% CI]"
                                                              for x in designs) + " |")
        lines.append("|---|---|" + "---|---|" * len(designs))
        for name in d["spread"][designs[0]]["attacks"]:
            cells = []
            for x in designs:
                a = d["spread"][x]["attacks"][name]
                cells.append(f"{a['rms_dev_from_half']:.4f} | {a['sd_ratio']:.2f} "
                             f"[{a['sd_ratio_interval'][0]:.2f}, {a['sd_ratio_interval'][1]:.2f}]")
            lines.append(f"| {name} | {d['spread'][designs[0]]['attacks'][name]['exact_null_sd']:.4f} | "
                         + " | ".join(cells) + " |")
    lines.append("\n**Verdicts** (corrected: the family-wise lower bound of the maximum AUC over the 8 attacks "
                 "above 0.5; uncorrected: some attack's own interval above 0.5)\n")
    lines.append("| dataset | design | null audits | corrected \"leaks\" [exact 95% CI] | uncorrected [exact 95% CI] "
                 "| slice detector AUC (mean, max) |")
    lines.append("|---|---|---|---|---|---|")
    rows = [(ds, design, s) for ds, d in result["datasets"].items() for design, s in d["designs"].items()]
    rows += [("all", design, s) for design, s in result.get("pooled", {}).items()]
    for ds, design, s in rows:
        det = s.get("slice_detector_auc")
        lines.append(f"| {ds} | {design} | {s['n_audits']} | {_pct(s['leaks'])} | "
                     f"{_pct(s['any_interval_above_half'])} | "
                     + (f"{det['mean']:.3f}, {det['max']:.3f} ({det['n']} splits)" if det else "") + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", choices=list(SETTINGS), help="default: all (--quick: digits)")
    parser.add_argument("--targets", type=int, help="targets per dataset (seeds 0..; default per dataset)")
    parser.add_argument("--splits", type=int, help="random null splits per target (default per dataset)")
    parser.add_argument("--contiguous-splits", type=int, help="contiguous null splits per target")
    parser.add_argument("--spread-splits", type=int, help="AUC-only null splits per target and design")
    parser.add_argument("--n-bootstrap", type=int, help=f"default {AuditConfig().n_bootstrap} (--quick: 200)")
    parser.add_argument("--detector-splits", type=int, default=1, help="splits per target and design that get "
                        "the slice detector")
    parser.add_argument("--verify-targets", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="digits only (unless --datasets), 2 targets x "
                        "(3 random + 2 contiguous) splits, 10 spread splits, 200 bootstrap replicates")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "null_audits.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.targets = args.targets or 2
        args.splits = args.splits or 3
        args.contiguous_splits = args.contiguous_splits or 2
        args.spread_splits = args.spread_splits if args.spread_splits is not None else 10
        args.n_bootstrap = args.n_bootstrap or 200
        args.datasets = args.datasets or ["digits"]
    args.datasets = args.datasets or list(SETTINGS)
    args.n_bootstrap = args.n_bootstrap or AuditConfig().n_bootstrap
    import torch

    torch.set_num_threads(1)
    attacks = tuple(DEFAULT_ATTACKS)
    fpr_targets = AuditConfig().fpr_targets
    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "benchmark": "null_audits", "argv": sys.argv[1:] if argv is None else list(argv),
        "settings": {"n_bootstrap": args.n_bootstrap, "level": LEVEL, "n_shadows": N_SHADOWS, "attacks": list(attacks),
                     "fpr_targets": list(fpr_targets)},
        "datasets": {}}
    all_rows: dict[str, dict[str, list]] = {}
    for ds in args.datasets:
        cfg = dict(SETTINGS[ds])
        for key, value in (("targets", args.targets), ("random_splits", args.splits),
                           ("contiguous_splits", args.contiguous_splits), ("spread_splits", args.spread_splits)):
            if value is not None:
                cfg[key] = value
        data = mialab.load_dataset(ds)
        rows: dict[str, list] = {"random": [], "contiguous": []}
        all_rows[ds] = rows
        spreads: dict[str, list] = {"random": [], "contiguous": []}
        targets = []
        for t in range(cfg["targets"]):
            nt = build_target(data, cfg, t, attacks)
            tt = time.perf_counter()
            for design, n_splits in (("random", cfg["random_splits"]), ("contiguous", cfg["contiguous_splits"])):
                for i in range(n_splits):
                    rows[design].append(null_audit(
                        nt, data, cfg, design, i, attacks, n_bootstrap=args.n_bootstrap, fpr_targets=fpr_targets,
                        detector=i < args.detector_splits,
                        verify_here=design == "random" and i == 0 and t < args.verify_targets))
            nt.summary["audits_s"] = time.perf_counter() - tt
            tt = time.perf_counter()
            for design in ("random", "contiguous"):
                if cfg["spread_splits"]:
                    spreads[design].append((t, spread(nt, data, cfg, design, cfg["spread_splits"], attacks)))
            nt.summary["spread_s"] = time.perf_counter() - tt
            targets.append(nt.summary)
            print(f"{ds} target {t}: train acc {nt.summary['train_accuracy']:.3f}, test acc "
                  f"{nt.summary['test_accuracy']:.3f}; {nt.summary['train_s']:.1f} s training, "
                  f"{nt.summary['score_s']:.1f} s scoring, {nt.summary['audits_s']:.1f} s null audits, "
                  f"{nt.summary['spread_s']:.1f} s spread", flush=True)
        result["datasets"][ds] = {
            "settings": {**cfg, "n_shadows": N_SHADOWS, "recipe": "TrainConfig() (30 epochs, Adam 1e-3, batch 64)"},
            "targets": targets,
            "verification": [r["verification"] for r in rows["random"] if "verification" in r],
            "designs": {d: summarise(r, attacks) for d, r in rows.items() if r},
            "spread": {d: summarise_spread(p, attacks) for d, p in spreads.items() if p},
            "audits": {d: _columns(r, attacks) for d, r in rows.items() if r},
            "spread_by_target": {d: [{"target": t, **_moments(p, attacks)} for t, p in ps]
                                 for d, ps in spreads.items()}}
    if len(result["datasets"]) > 1:  # every dataset's audits together; targets keyed by dataset and seed
        result["pooled"] = {}
        for design in ("random", "contiguous"):
            rows = [{**r, "target": f"{ds}:{r['target']}"} for ds, by_design in all_rows.items()
                    for r in by_design[design]]
            if rows:
                result["pooled"][design] = summarise(rows, attacks)
    result["wall_s"] = time.perf_counter() - t0
    from mialab.pipeline.provenance import hardware, versions

    result["versions"], result["hardware"] = versions(), hardware()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(_dumps(result))
    print(markdown(result))
    print(f"\nwall time {result['wall_s']:.0f} s; written to {args.out}")
    return result


if __name__ == "__main__":
    main()
