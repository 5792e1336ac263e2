"""Keep the passphrase unlock benchmark runnable (a low work factor; no timing assertions)."""

from tests.bench.bench_passphrase import main


def test_passphrase_benchmark_runs():
    results = main(work_factor=10, count=1)
    assert results["porchlight_s"] > 0 and results["rage_s"] > 0
