"""write_private from two processes at once (a CLI command and the running hub's web UI, both
re-sealing one key): each write is whole, neither writer fails, nothing is left behind."""

from __future__ import annotations

import stat
import subprocess
import sys

ROUNDS = 150
WRITER = """
import sys
from pathlib import Path
from hub.datadir import write_private
path, fill, size, rounds = Path(sys.argv[1]), sys.argv[2].encode(), int(sys.argv[3]), int(sys.argv[4])
sys.stdin.readline()  # start together
for _ in range(rounds):
    write_private(path, fill * size)
"""


def test_two_writers_of_one_secret_never_mix_or_fail(tmp_path):
    path = tmp_path / "keys" / "household.age"
    contents = {b"A" * 300, b"B" * 700}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), fill, str(size),
                                 str(ROUNDS)], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
               for fill, size in (("A", 300), ("B", 700))]
    for writer in writers:
        writer.stdin.write("go\n")
        writer.stdin.flush()
    seen = set()
    while any(w.poll() is None for w in writers):
        if path.exists():
            seen.add(path.read_bytes())  # a reader sees one whole file or the other
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
    seen.add(path.read_bytes())
    assert seen <= contents
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["household.age"]
