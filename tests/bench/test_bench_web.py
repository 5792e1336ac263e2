"""Keep the web UI benchmark runnable (one camera, few rounds; no timing assertions)."""

from tests.bench.bench_web import main
from tests.conftest import WORK_FACTOR


def test_web_benchmark_runs():
    results = main(cameras=1, rounds=2, record_s=3.0, work_factor=WORK_FACTOR)
    home = next(p for p in results["pages"] if p["page"] == "/")
    assert home["bytes"] > 0 and results["sign_in_ms"] > 0
