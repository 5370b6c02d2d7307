"""Decompression bombs: the child, never the parent, must be what runs into a limit."""

from __future__ import annotations

import zlib

import pytest

from tests.support.memory import peak_rss_growth
from tests.workers.documents.pdf_builders import (
    MIB,
    deflate_with_zeros,
    flate_bomb,
    inflated_size,
    inline_image_bomb,
)
from workers.documents import DocumentError, LimitsSpec, read_document

# What the parent may grow by while the child meets a bomb of 1 GB and more: it holds the file and the
# child's report, never the inflated streams.
PARENT_GROWTH_LIMIT_MB = 200


def test_zero_stream_builder_is_exact() -> None:
    stream = deflate_with_zeros(b"BI ", 3, b" EI")
    assert zlib.decompress(stream) == b"BI " + bytes(3 * MIB) + b" EI"
    assert inflated_size(stream) == 3 * MIB + 6
    # Each further MiB costs the same few bytes: 1100 MiB stays far below 2 MB.
    assert len(deflate_with_zeros(b"", 1100, b"")) < 2 * MIB


def test_flate_bomb_is_too_large_in_the_child() -> None:
    bomb = flate_bomb(inflated_mib=1100)
    assert len(bomb) < 2 * MIB
    assert len(bomb) < LimitsSpec().max_bytes, "the parent's byte limit must not be what stops it"
    # 1100 MiB of zeros by construction (the builder is checked exactly above).

    with peak_rss_growth() as parent, pytest.raises(DocumentError) as caught:
        read_document(bomb)

    error = caught.value
    assert error.code == "too_large"
    # pypdf's own inflate cap (75 MB), hit inside the child: the child reports it, with its cost.
    assert error.details["limit"] == "parser"
    assert error.details["exception"] == "LimitReachedError"
    assert "child_peak_rss_mb" in error.details
    print(f"flate bomb: {len(bomb)} bytes -> 1100 MiB; child peak {error.details['child_peak_rss_mb']} MB")
    assert parent.mb < PARENT_GROWTH_LIMIT_MB


def test_bomb_past_pypdf_limits_hits_the_child_memory_limit() -> None:
    # 18 pages x 64 MiB: each stream is under pypdf's per-stream caps, together they pass 1 GiB, and
    # pypdf keeps every decoded stream. 512 MB (not the default 1 GB) keeps the test quick; the
    # clock is generous so a busy machine cannot turn this into a timeout.
    limits = LimitsSpec(memory_mb=512, timeout_s=60)
    bomb = inline_image_bomb(pages=18, mib_per_page=64)
    assert len(bomb) < 2 * MIB

    with peak_rss_growth() as parent, pytest.raises(DocumentError) as caught:
        read_document(bomb, limits=limits)

    error = caught.value
    assert error.code == "too_large"
    assert error.details["limit"] == "memory_mb"
    # The child grew to its rlimit while the parent stayed small: the child is what hit it.
    assert error.details["child_peak_rss_mb"] > 0.5 * limits.memory_mb
    print(f"inline bomb: {len(bomb)} bytes; child peak {error.details['child_peak_rss_mb']} MB")
    assert parent.mb < PARENT_GROWTH_LIMIT_MB
