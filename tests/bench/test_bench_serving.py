"""Keep the serving benchmark runnable (few requests; no timing assertions)."""

from tests.bench.bench_serving import main


def test_serving_benchmark_runs():
    results = main(requests=50, concurrency=5, rounds=1)
    assert set(results["ratio"]) == {"new connection per request", "kept-alive connections"}
    assert all(rate > 0 for rate in results["HardenedServer"].values())
