"""Passphrase unlock benchmark: opening a key sealed at a fixed work factor, against rage.

Run: python -m tests.bench.bench_passphrase [--work-factor 18] [--count 3]
Both open the same age file (hub/passphrase_seal.py sealed it); the baseline is rage (pyrage),
measured in the same run. Prints figures and the ratio; never asserts a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

PASS = "benchmark passphrase 1"
KEY = b"AGE-SECRET-KEY-1" + b"Q" * 58 + b"\n"


def _median_seconds(open_once, count: int) -> float:
    times = []
    for _ in range(count):
        began = time.perf_counter()
        assert open_once() == KEY
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main(work_factor: int = 18, count: int = 3) -> dict:
    """Time count unlocks each way; return and print the medians and their ratio."""
    import pyrage

    from hub.passphrase_seal import open_sealed, seal

    sealed = seal(KEY, PASS, work_factor)
    ours = _median_seconds(lambda: open_sealed(sealed, PASS), count)
    rage = _median_seconds(lambda: pyrage.passphrase.decrypt(sealed, PASS), count)
    result = {"work_factor": work_factor, "count": count, "porchlight_s": round(ours, 4),
              "rage_s": round(rage, 4), "ratio_to_rage": round(ours / rage, 3)}
    print(f"unlock at 2^{work_factor}: porchlight {ours:.3f} s, rage {rage:.3f} s "
          f"(ratio {ours / rage:.2f}), median of {count}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-factor", type=int, default=18)
    parser.add_argument("--count", type=int, default=3)
    options = parser.parse_args()
    print(json.dumps(main(options.work_factor, options.count)))
