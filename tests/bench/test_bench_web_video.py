"""Keep the web video benchmark runnable (short windows; no timing assertions)."""

from tests.bench.bench_web_video import main


def test_web_video_benchmark_runs():
    results = main(seconds=3.0, viewers=1, clicks=1, segment_seconds=2.0)
    assert results["live_latency_ms_median"] > 0
    assert results["playback_first_frame_ms_median"] > 0
