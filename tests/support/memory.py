"""The test process's own memory growth, measured from a reset point.

`ru_maxrss` is a lifetime peak: once an earlier test in the same pytest process has loaded a model it is
already past any bound, so it cannot show that *this* call stayed small. Linux lets a process reset its
high-water mark (`/proc/self/clear_refs`, value 5) and read it back (`VmHWM`), which measures exactly the
growth the call under test caused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_STATUS = Path("/proc/self/status")


def _status_mb(field: str) -> float:
    found = re.search(rf"^{field}:\s+(\d+) kB$", _STATUS.read_text(encoding="ascii"), re.MULTILINE)
    assert found is not None, f"{field} missing from /proc/self/status"
    return int(found.group(1)) / 1024


@dataclass
class Growth:
    """Peak resident memory above the level at the reset, in MB; filled when the block ends."""

    mb: float = 0.0


@contextmanager
def peak_rss_growth() -> Iterator[Growth]:
    """Reset the high-water mark, run the block, and report how far the peak rose above the start."""
    Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    start = _status_mb("VmRSS")
    growth = Growth()
    try:
        yield growth
    finally:
        growth.mb = _status_mb("VmHWM") - start
