"""The RTSP test server: real GStreamer RTSP streams read by PyAV, as the recorder will."""

from __future__ import annotations

import av
import pytest

from plugins.cameras.scene import write_clip
from tests.rtsp_fixture import rtsp_server  # noqa: F401 - pytest fixture

TCP = {"rtsp_transport": "tcp"}
LIVE_LAUNCH = (
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 "
    "! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1 )"
)


def demux_seconds(url: str, seconds: float) -> list[av.Packet]:
    """Read packets with a dts from a stream until `seconds` of stream time have passed."""
    packets = []
    with av.open(url, options=TCP, timeout=10) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        for packet in container.demux(stream):
            if packet.dts is None:
                continue
            packets.append(packet)
            if (packet.dts - packets[0].dts) * packet.time_base >= seconds:
                break
    return packets


@pytest.fixture
def one_second_clip(tmp_path):
    path = tmp_path / "clip.mp4"
    write_clip(path, seconds=1.0, fps=15, gop_seconds=0.5)
    return path


def test_file_mount_loops_with_increasing_timestamps(rtsp_server, one_second_clip):  # noqa: F811
    server = rtsp_server(files={"/cam1": one_second_clip}, user="alice", password="s3cret:/@")

    packets = demux_seconds(server.url("/cam1"), 2.5)

    # A one-second file read for 2.5 s of stream time has looped twice without a jump back.
    dts = [packet.dts for packet in packets]
    assert all(later > earlier for earlier, later in zip(dts, dts[1:], strict=False))
    assert sum(packet.is_keyframe for packet in packets) >= 4
    assert len(packets) >= 30
    # The server saw one client, and streamed to it for about the 2.5 s read.
    assert server.connections() == 1
    assert 1.5 < server.served_seconds() < 30


@pytest.mark.parametrize("method", ["basic", "digest"])
def test_wrong_or_missing_credentials_are_refused(
    rtsp_server, one_second_clip, method  # noqa: F811
):
    server = rtsp_server(files={"/cam1": one_second_clip}, user="alice", password="right",
                         auth=method)

    for url in (server.url("/cam1", password="wrong"), server.url("/cam1", user="")):
        with pytest.raises(av.error.HTTPUnauthorizedError):
            av.open(url, options=TCP, timeout=10)
    # Each refused open was one connection to the server, and nothing was streamed.
    assert server.connections() == 2
    assert server.served_seconds() == 0


def test_live_and_file_mounts_side_by_side(rtsp_server, one_second_clip):  # noqa: F811
    server = rtsp_server(mounts={"/live": LIVE_LAUNCH}, files={"/file": one_second_clip})

    live = demux_seconds(server.url("/live"), 1.0)
    recorded = demux_seconds(server.url("/file"), 0.5)

    assert live[0].stream.codec_context.width == 320
    assert recorded[0].stream.codec_context.width == 640


def test_stop_ends_the_server_process(rtsp_server, one_second_clip):  # noqa: F811
    server = rtsp_server(files={"/cam1": one_second_clip})

    server.stop()

    assert server.process.poll() is not None
    with pytest.raises(av.error.FFmpegError):
        av.open(server.url("/cam1"), options=TCP, timeout=5)
