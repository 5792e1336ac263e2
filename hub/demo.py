"""`porchlight demo`: a hub on embedded defaults, start to finish, with no configuration."""

from __future__ import annotations

import io
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

import av

from .footage import export_footage, import_files
from .household import unlock_household_identity
from .init import create_hub
from .plugins import collect_types
from .service import Hub
from .timeutil import iso, utcnow


def _say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def run_demo(keep: Path | None = None) -> int:
    """Create a hub, record a generated clip into the vault, list it, export it; say each step."""
    with tempfile.TemporaryDirectory(prefix="porchlight-demo-") as scratch:
        base = Path(keep) if keep else Path(scratch)
        base.mkdir(parents=True, exist_ok=True)
        root = base / "hub"
        passphrase = secrets.token_urlsafe(18)
        _say(f"creating a hub in {root} (demo passphrase: {passphrase})")
        create_hub(root, passphrase, name="demo-porch", location=(51.5007, -0.1246))
        hub = Hub(root)
        try:
            clip = base / "porch-camera.mp4"
            _say("generating 30 s of H.264 from the synthetic porch camera (PyAV, in process)")
            cameras = collect_types(hub.pm.hook.porchlight_camera_types(), "camera")
            cameras["synthetic"].write_clip(clip, seconds=30.0, fps=15)
            start = utcnow().replace(microsecond=0) - timedelta(minutes=5)
            segments = import_files(hub, "porch", start, [clip], progress=False)
            clip.unlink()  # the only plaintext was our own generated input
            _say(f"sealed {len(segments)} segments into the vault with the public key only:")
            for s in segments:
                _say(f"  {s.camera} {iso(s.start)} .. {iso(s.end)}  {s.size:>7} bytes  "
                     f"sha256 {s.sha256[:16]}...  {s.path}")
            out = base / "porch-export.mp4"
            _say("exporting the first 20 s: this needs the passphrase")
            identity = unlock_household_identity(hub.data, passphrase)
            result = export_footage(
                hub, "porch", start, start + timedelta(seconds=20), out, lambda: identity,
                progress=False,
            )
            with av.open(str(out)) as container:
                frames = sum(1 for _ in container.decode(video=0))
            _say(f"wrote {out.name}: {len(result.exported)} segments, {frames} frames, "
                 f"{out.stat().st_size} bytes, remuxed without re-encoding")
            leaked = _plaintext_on_disk(root, hub.vault.read(segments[0], identity))
            _say("checked every file of the data dir: "
                 + ("no plaintext footage on disk" if not leaked else f"LEAK in {leaked}"))
        finally:
            hub.close()
        if keep:
            _say(f"kept everything in {base}")
        return 0


def _plaintext_on_disk(root: Path, plain: bytes) -> list[str]:
    """Return data-dir files that contain a slice of a segment's plaintext video."""
    with av.open(io.BytesIO(plain)) as container:
        packet = next(p for p in container.demux(video=0) if p.size > 256)
        needle = bytes(packet)[64:128]
    return [str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and needle in p.read_bytes()]
