"""Run the default test suite under many values of MIALAB_TEST_SEED and record what failed.

    python benchmarks/test_seeds.py                     # seeds 1..20, two suites at a time
    python benchmarks/test_seeds.py --seeds 1 2 3 --jobs 1
    python benchmarks/test_seeds.py --out stat_seeds.json tests/test_attacks.py tests/test_metrics.py

Every statistical test shifts its seeds by ``MIALAB_TEST_SEED`` (tests/_seeds.py), so each value
redraws its data, models, attack randomness and bootstrap replicates. Each test's false-failure
probability is below 1e-4 by construction (written next to its assertion); this runs the whole
default suite (``python -m pytest``, as the README's test command) once per seed, each pytest
process on one thread, and writes the outcome per seed to benchmarks/results/test_seeds.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_SUMMARY = re.compile(r"^=*\s*(\d+ (?:passed|failed|error).*?) in [\d.]+s")


def run(seed: int, paths: tuple[str, ...] = ()) -> dict:
    env = {**os.environ, "MIALAB_TEST_SEED": str(seed), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf", *paths], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    lines = proc.stdout.splitlines()
    summary = next((m.group(1) for line in reversed(lines) if (m := _SUMMARY.search(line))), "no summary")
    failed = [line.split(" ", 2)[1] for line in lines if line.startswith(("FAILED ", "ERROR "))]
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", summary)}
    return {"seed": seed, "paths": list(paths) or "default suite", "returncode": proc.returncode, "summary": summary, "counts": counts,
            "failed": failed, "wall_s": round(wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 21)))
    parser.add_argument("--jobs", type=int, default=2, help="suites run at once (default 2, one per core)")
    parser.add_argument("--out", default="test_seeds.json", help="file name under benchmarks/results/")
    parser.add_argument("paths", nargs="*", help="test files to run (default: the whole default suite)")
    args = parser.parse_args()
    out = ROOT / "benchmarks" / "results" / args.out
    out.parent.mkdir(exist_ok=True)
    rows = []
    with ThreadPoolExecutor(args.jobs) as pool:
        for row in pool.map(lambda seed: run(seed, tuple(args.paths)), args.seeds):
            rows.append(row)
            print(f"MIALAB_TEST_SEED={row['seed']}: {row['summary']} ({row['wall_s']} s)"
                  + (f" FAILED: {row['failed']}" if row["failed"] else ""), flush=True)
            out.write_text(json.dumps(rows, indent=2) + "\n")  # saved as each suite finishes
    bad = [r["seed"] for r in rows if r["returncode"] != 0]
    print(f"\n{len(rows)} suite runs, {len(bad)} with a failure{': seeds ' + str(bad) if bad else ''}")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
