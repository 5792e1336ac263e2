"""A camera's live stream: real H.264 packets remuxed once into fMP4 and fanned out to viewers,
each starting at a keyframe; slow viewers skip ahead, never hold the camera up."""

from __future__ import annotations

import asyncio
import contextlib
import io

import av
import pytest

from hub.cameras import live
from hub.cameras.live import ENDED, LiveBusy, LiveStream
from plugins.cameras.scene import write_clip


@pytest.fixture(scope="module")
def clip() -> bytes:
    """Three seconds of the synthetic scene as MPEG-TS (a keyframe a second, 15 fps)."""
    out = io.BytesIO()
    write_clip(out, seconds=3.0, size=(320, 180), container="mpegts")
    return out.getvalue()


@contextlib.contextmanager
def demuxed(clip: bytes):
    """Yield the clip's (packet, stream) pairs as the recorder demuxes them, the input still open
    (as in the recorder: a muxer is made from the live input stream)."""
    with av.open(io.BytesIO(clip), format="mpegts") as container:
        video = container.streams.video[0]
        yield [(p, video) for p in container.demux(video) if p.dts is not None]


async def drain(viewer) -> list:
    await asyncio.sleep(0)  # let the fragments sent with call_soon_threadsafe arrive
    items = []
    while not viewer.queue.empty():
        items.append(await viewer.next())
    return items


def decoded_frames(init: bytes, fragments: list[bytes]) -> int:
    with av.open(io.BytesIO(init + b"".join(fragments))) as container:
        return sum(1 for _ in container.decode(video=0))


async def test_a_viewer_gets_the_type_the_init_segment_and_playable_fragments(clip):
    stream = LiveStream("porch")
    viewer = stream.subscribe(asyncio.get_running_loop())
    with demuxed(clip) as all_packets:
        for packet, video in all_packets:
            stream.feed(packet, video)
        items = await drain(viewer)
    fed = len(all_packets)
    assert items[0].startswith('video/mp4; codecs="avc1.')
    init, fragments = items[1], items[2:]
    assert init[4:8] == b"ftyp" and b"moov" in init
    assert all(f[4:8] == b"moof" for f in fragments)
    # One fragment per packet, the last one waiting for the next packet (frag_every_frame).
    assert len(fragments) == fed - 1
    assert decoded_frames(init, fragments) == fed - 1


async def test_a_late_viewer_starts_at_the_last_keyframe(clip):
    stream = LiveStream("porch")
    first = stream.subscribe(asyncio.get_running_loop())
    with demuxed(clip) as all_packets:
        for packet, video in all_packets[:20]:  # keyframes at 0 and 15
            stream.feed(packet, video)
        late = stream.subscribe(asyncio.get_running_loop())
        items = await drain(late)
    assert items[0].startswith("video/mp4") and items[1][4:8] == b"ftyp"
    # The fragments since the keyframe at packet 15 (the 20th waits for the next packet).
    assert len(items[2:]) == 4
    assert decoded_frames(items[1], items[2:]) == 4
    assert len(await drain(first)) == 2 + 19


async def test_nobody_watching_costs_no_muxer_and_the_first_viewer_starts_at_once(clip):
    stream = LiveStream("porch")
    with demuxed(clip) as all_packets:
        for packet, video in all_packets[:20]:
            stream.feed(packet, video)
        assert stream.fragments == 0
        viewer = stream.subscribe(asyncio.get_running_loop())
        stream.feed(*all_packets[20])
        items = await drain(viewer)
    # The GOP kept in memory (packets 15-19) plus packet 20; the last waits for the next one.
    assert len(items[2:]) == 5 and decoded_frames(items[1], items[2:]) == 5
    stream.unsubscribe(viewer)
    assert stream._muxer is None


async def test_a_slow_viewer_skips_to_the_next_keyframe(clip, monkeypatch):
    monkeypatch.setattr(live, "VIEWER_BACKLOG", 5)
    stream = LiveStream("porch")
    viewer = stream.subscribe(asyncio.get_running_loop())
    with demuxed(clip) as all_packets:
        for packet, video in all_packets:
            stream.feed(packet, video)
    await asyncio.sleep(0)
    items = []
    while not viewer.queue.empty():
        items.append(viewer.queue.get_nowait())
    # mime, init, 3 fragments fill the backlog; then only keyframe fragments get through.
    fragments = items[2:]
    assert len(fragments) == 3 and viewer.skipped > 0
    assert viewer.skipping


async def test_limits_and_ends(clip, monkeypatch):
    monkeypatch.setattr(live, "MAX_VIEWERS", 2)
    stream = LiveStream("porch")
    loop = asyncio.get_running_loop()
    viewers = [stream.subscribe(loop), stream.subscribe(loop)]
    with pytest.raises(LiveBusy, match="^camera porch already has 2 live viewers$"):
        stream.subscribe(loop)
    stream.end()
    for viewer in viewers:
        assert (await drain(viewer))[-1] is ENDED
    assert stream.viewers == 0
