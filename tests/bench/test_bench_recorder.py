"""Keep the recorder benchmark runnable (tiny sizes; no timing assertions)."""

import shutil

from tests.bench.bench_recorder import main


def test_recorder_benchmark_runs():
    results = main(seconds=4.0, size=(320, 180), memory=False, sub=(160, 90))
    assert results["record_cpu_s_per_min"] > 0
    # docs/install-pi.md quotes cameras per core, each beside ffmpeg's on the same work.
    for name in ("record", "record_analyse", "record_analyse_sub"):
        assert results[f"cameras_per_core_{name}"] > 0
        if shutil.which("ffmpeg"):
            assert results[f"cameras_per_core_{name}_baseline"] > 0
