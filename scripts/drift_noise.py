"""How much the monitor's drift measures scatter when nothing moved: periods of N predictions
drawn from a HAM10000-like 7-class mix, compared with that mix (dermspark.report.drift). The
figures docs/monitor.md gives for its thresholds.

    .venv/bin/python scripts/drift_noise.py [--draws 2000]
"""

import argparse

import numpy as np
from dermspark.report.drift import js_distance, psi

MIX = np.array([0.67, 0.11, 0.11, 0.05, 0.03, 0.015, 0.015])
MOVED = np.array([0.40, 0.30, 0.11, 0.09, 0.05, 0.03, 0.02])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    for size in (200, 500):
        counts = [rng.multinomial(size, MIX) for _ in range(args.draws)]
        psis = [psi(MIX, count) for count in counts]
        distances = [js_distance(MIX, count) for count in counts]
        print(
            f"{size} predictions: PSI median {np.median(psis):.3f}, 99th percentile {np.quantile(psis, 0.99):.3f}; "
            f"JS distance median {np.median(distances):.3f}, 99th percentile {np.quantile(distances, 0.99):.3f}"
        )
    print(f"nevi 67% -> 40%: PSI {psi(MIX, MOVED):.2f}, JS distance {js_distance(MIX, MOVED):.2f}")


if __name__ == "__main__":
    main()
