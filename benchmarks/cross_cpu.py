"""How far the default audit's numbers move when the float rounding of training changes.

    python benchmarks/cross_cpu.py                    # profiles sse4, avx2 (+ avx512 if the CPU has it)
    python benchmarks/cross_cpu.py --seeds 0 1 2

Machines with other CPUs run other PyTorch kernels (AVX2, AVX-512, AMX), so the same seed trains
models that differ at float level; the audit's numbers should then differ by little. One machine
can show this: ``ATEN_CPU_CAPABILITY`` makes PyTorch dispatch the kernels of a lower instruction
set, and ``MKL_ENABLE_INSTRUCTIONS`` / ``ONEDNN_MAX_CPU_ISA`` do the same for the matrix
products (profiles ``sse4``, ``avx2``, ``avx512``), which changes their rounding the way another CPU
does. For each seed, this script runs the default audit (no defense comparison) once per
profile in a fresh process and reports, per attack, the largest
difference in AUC and in TPR at 1% FPR between capabilities, and whether the scores were
bit-identical. Results go to benchmarks/results/cross_cpu.json; the README's "Reproducibility"
section states the tolerances measured here.

A second check, in process: the target's logits on the evaluated records are jittered by a
relative 1e-6 (20 draws), the rounding scale of a different kernel, and every attack re-scored on
them; the spread (max - min) of each attack's AUC is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

_CHILD = r"""
import json, sys
import numpy as np
import mialab
from mialab.pipeline.provenance import hardware
res = mialab.audit("digits", seed=int(sys.argv[1]), quiet=True)
print(json.dumps({"hardware": hardware(), "attacks": {
    m: {"auc": res.metrics[m].auc, "tpr_at_1pct": res.metrics[m].tpr_at(0.01).tpr,
        "scores": [float(x) for x in next(a.scores for a in res.attacks if a.attack == m)]}
    for m in res.metrics}}))
"""


#: instruction-set profiles: PyTorch's own kernels (ATEN_CPU_CAPABILITY), MKL's BLAS and oneDNN's
PROFILES = {
    "sse4": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "MKL_ENABLE_INSTRUCTIONS": "AVX512",
               "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
}


def run_capability(capability: str, seed: int) -> dict:
    env = {**os.environ, **PROFILES[capability], "PYTHONUNBUFFERED": "1"}
    out = subprocess.run([sys.executable, "-c", _CHILD, str(seed)], env=env, check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def jitter_spread(seed: int, n_draws: int = 20, scale: float = 1e-6) -> dict[str, float]:
    """Per attack: max - min AUC over ``n_draws`` relative jitters of the target's logits."""
    import numpy as np

    import mialab
    from mialab.pipeline.compose import train_shadows, train_target
    from mialab.pipeline.runner import attack_all
    from mialab.pipeline.threat import audit_split, target_like_shadow_membership
    from mialab.config import AuditConfig
    from mialab.data import load_dataset
    from mialab.training import logit_query

    config = AuditConfig(seed=seed)
    data = load_dataset("digits")
    split = audit_split(data, config)
    target = train_target(data, split, seed=seed, training=config.training)
    membership = target_like_shadow_membership(split, config.n_shadows, seed=seed)
    shadows, membership = train_shadows(data, split, membership, training=config.training, seed=seed)
    shadow_q = [logit_query(s.model) for s in shadows]
    base = logit_query(target.model)
    aucs: dict[str, list[float]] = {}
    for d in range(n_draws):
        rng = np.random.default_rng([seed, d])

        def jittered(X, rng=rng):
            z = np.asarray(base(X), dtype=np.float64)
            return (z * (1 + scale * rng.standard_normal(z.shape))).astype(np.float32)

        _, metrics = attack_all(config.replace(n_bootstrap=1), data, split, jittered, shadow_q, membership)
        for name, m in metrics.items():
            aucs.setdefault(name, []).append(m.auc)
    del mialab
    return {name: max(v) - min(v) for name, v in aucs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--capabilities", nargs="+", default=None,
                        choices=sorted(PROFILES),
                        help="instruction-set profiles (default: sse4, avx2, and avx512 if the CPU has it)")
    parser.add_argument("--no-jitter", action="store_true", help="skip the in-process jitter check")
    parser.add_argument("--out", default="cross_cpu.json", help="file name under benchmarks/results/")
    args = parser.parse_args()
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    caps = args.capabilities or (["sse4", "avx2"] + (["avx512"] if "avx512f" in flags else []))
    out = HERE / "results" / args.out
    out.parent.mkdir(exist_ok=True)
    rows = []
    for seed in args.seeds:
        runs = {c: run_capability(c, seed) for c in caps}
        ref = runs[caps[0]]
        per_attack = {}
        for name in ref["attacks"]:
            aucs = [runs[c]["attacks"][name]["auc"] for c in caps]
            tprs = [runs[c]["attacks"][name]["tpr_at_1pct"] for c in caps]
            same = all(runs[c]["attacks"][name]["scores"] == ref["attacks"][name]["scores"] for c in caps)
            per_attack[name] = {"auc": aucs, "max_auc_diff": max(aucs) - min(aucs),
                                "max_tpr1_diff": max(tprs) - min(tprs), "bit_identical": same}
        row = {"seed": seed, "capabilities": caps,
               "reported_capability": {c: runs[c]["hardware"]["torch_cpu_capability"] for c in caps},
               "attacks": per_attack}
        if not args.no_jitter:
            row["jitter_auc_spread"] = jitter_spread(seed)
        rows.append(row)
        print(f"seed {seed}: capabilities {row['reported_capability']}")
        print("| attack | AUC per capability | max AUC diff | max TPR@1% diff | bit-identical |"
              + (" AUC spread under 1e-6 jitter |" if "jitter_auc_spread" in row else ""))
        print("|---|---|---|---|---|" + ("---|" if "jitter_auc_spread" in row else ""))
        for name, v in per_attack.items():
            jit = f" {row['jitter_auc_spread'][name]:.4f} |" if "jitter_auc_spread" in row else ""
            print(f"| {name} | {', '.join(f'{a:.4f}' for a in v['auc'])} | {v['max_auc_diff']:.4f} | "
                  f"{v['max_tpr1_diff']:.4f} | {v['bit_identical']} |{jit}")
        out.write_text(json.dumps(rows, indent=2) + "\n")  # saved after every seed
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
