"""Progress bars for long work (imports, exports) on stderr, shown only on a terminal."""

from __future__ import annotations

import sys

from tqdm import tqdm

# tqdm's monitor thread only tunes refresh rates; without it no thread outlives a command.
tqdm.monitor_interval = 0


def progress_bar(total: int, unit: str, desc: str, enabled: bool = True) -> tqdm:
    """Return a progress bar on stderr; it stays silent when stderr is not a terminal."""
    return tqdm(total=total, unit=unit, unit_scale=unit == "B", desc=desc, file=sys.stderr,
                disable=None if enabled else True)
