"""Does tuning the label-only noise level on shadow models pick the level that works on the target?

    python benchmarks/label_only_levels.py [--seeds 0 1 2]

For the default digits audit (target, 8 shadows), the label-only attack queries every record at
each candidate noise level; this prints, per level, the AUC on the shadows' pooled members and
non-members (what the attack selects on) and the AUC on the target's evaluated records (what a
perfect choice would maximise), and the level the attack chose.
"""

from __future__ import annotations

import argparse

import numpy as np

import mialab
from mialab.attacks import AttackerData, make_attack
from mialab.pipeline.compose import train_shadows, train_target
from mialab.pipeline.threat import target_like_shadow_membership
from mialab.metrics import roc_auc
from mialab.seeding import derive_seed
from mialab.training import logit_query


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    ds = mialab.load_dataset("digits")
    print("| seed | level | shadow AUC | target AUC | chosen |\n|---|---|---|---|---|")
    for seed in args.seeds:
        split = mialab.make_split(ds.y, seed=derive_seed(seed, "split"))
        target = train_target(ds, split, seed=seed)
        membership = target_like_shadow_membership(split, 8, seed=seed)
        shadows, membership = train_shadows(ds, split, membership, seed=seed)
        attack = make_attack("label-only", seed=derive_seed(seed, "attack", "label-only") % 2**32)
        pool, ids = membership.record_ids, split.evaluated
        obs = tuple(attack.observe(logit_query(s.model), ds.X[pool], ds.y[pool], pool) for s in shadows)
        target_obs = attack.observe(logit_query(target.model), ds.X[ids], ds.y[ids], ids)
        attack.fit(AttackerData(obs, membership))
        member = membership.matrix.reshape(-1)
        for index, level in enumerate(attack.noise_levels):
            shadow_auc = roc_auc(np.concatenate([attack._level_scores(o, index) for o in obs]), member)
            target_auc = roc_auc(attack._level_scores(target_obs, index), split.evaluated_membership)
            mark = "yes" if index == attack.level_index_ else ""
            print(f"| {seed} | {level} | {shadow_auc:.3f} | {target_auc:.3f} | {mark} |")


if __name__ == "__main__":
    main()
