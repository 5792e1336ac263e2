"""Keep the recorder benchmark runnable (tiny sizes; no timing assertions)."""

from tests.bench.bench_recorder import main


def test_recorder_benchmark_runs():
    results = main(seconds=4.0, size=(320, 180), memory=False)
    assert results["record_cpu_s_per_min"] > 0
