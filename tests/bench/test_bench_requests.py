"""Keep the agency-request benchmark runnable (tiny numbers; no timing assertions)."""

from tests.bench.bench_requests import main


def test_request_benchmark_runs():
    results = main(log_size=600, requests=40, hubs=4, raw_seconds=0.1)
    assert results["intake"]["requests_s"] > 0
    assert results["intake_http"]["requests_s"] > 0
    assert results["proofs"]["inclusion_hashes"] > 0
    assert results["to_hubs"]["p99_ms"] > 0
