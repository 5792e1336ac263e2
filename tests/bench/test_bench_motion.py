"""Keep the motion benchmark runnable: run it on a few frames and check it reports figures."""

from __future__ import annotations

import math

from tests.bench.bench_motion import main


def test_benchmark_runs_and_prints_figures_and_ratios(capsys):
    figures = main(frames=6, repeats=1)

    printed = capsys.readouterr().out
    assert "motion (luma)" in printed and "decode+motion / decode" in printed
    for label in ("720p", "1080p"):
        assert f"{label} hub whole path" in figures
        assert f"{label} hub path / (decode + detector)" in printed
    assert all(math.isfinite(value) and value > 0 for value in figures.values())
