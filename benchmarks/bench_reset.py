"""How long `CrafterEnv(seed).reset()` takes: prints {"reset_median_s": ...} as JSON.

    python benchmarks/bench_reset.py [--seeds 10]

World generation dominates; with opensimplex 0.3 (pinned) it is about 5x faster
than with 0.4, for the same worlds. Target: 0.25 s or less.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

from pytest_crafter_eval.env import CrafterEnv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default: %(default)s)")
    args = parser.parse_args()
    times = []
    for seed in range(args.seeds):
        env = CrafterEnv(seed)
        started = time.perf_counter()
        env.reset()
        times.append(time.perf_counter() - started)
    print(json.dumps({"reset_median_s": round(statistics.median(times), 4), "seeds": args.seeds}))


if __name__ == "__main__":
    main()
