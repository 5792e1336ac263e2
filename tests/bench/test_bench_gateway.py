"""Keep the gateway benchmark runnable (tiny numbers; no timing assertions)."""

from tests.bench.bench_gateway import main


def test_gateway_benchmark_runs():
    results = main(hubs=5, alerts=2, messages=20, http_messages=20, raw_seconds=0.1)
    assert results["fan_out"]["p99_ms"] > 0
    assert results["throughput"]["pipeline_ratio"] > 0
    assert results["throughput"]["http_alerts_s"] > 0
