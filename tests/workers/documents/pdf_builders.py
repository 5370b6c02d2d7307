"""Hand-built PDFs for tests: small files with exactly the hostile shape a test needs."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from typing import Final

MIB: Final = 1 << 20
_ADLER_MOD: Final = 65521


def _raw_deflate(data: bytes, mode: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(mode)


def deflate_with_zeros(prefix: bytes, zero_mib: int, suffix: bytes) -> bytes:
    """A zlib stream of `prefix + zero_mib MiB of NULs + suffix`, built in milliseconds.

    Each MiB of zeros is compressed once after a full flush (which resets the compressor), so the
    same block can be repeated; the Adler-32 of a run of zeros is computed directly.
    """
    zeros = _raw_deflate(bytes(MIB), zlib.Z_FULL_FLUSH)
    body = _raw_deflate(prefix, zlib.Z_FULL_FLUSH) + zeros * zero_mib + _raw_deflate(suffix, zlib.Z_FINISH)
    adler = zlib.adler32(prefix)
    low, high = adler & 0xFFFF, adler >> 16
    high = (high + zero_mib * MIB * low) % _ADLER_MOD  # each zero byte adds `low` to the high sum
    adler = zlib.adler32(suffix, (high << 16) | low)
    return b"\x78\xda" + body + struct.pack(">I", adler)


def inflated_size(stream: bytes) -> int:
    """Length of a zlib stream once inflated, measured in bounded chunks (never held in memory)."""
    decompressor = zlib.decompressobj()
    total = 0
    data = stream
    while data:
        total += len(decompressor.decompress(data, 16 * MIB))
        data = decompressor.unconsumed_tail
    return total + len(decompressor.flush())


def minimal_pdf(contents: Sequence[bytes], *, flate: bool = True) -> bytes:
    """A PDF with one page per content stream (Helvetica as /F1) and an exact xref table."""
    count = len(contents)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(count)).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Count %d /Kids [%s] >>" % (count, kids),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    filter_entry = b" /Filter /FlateDecode" if flate else b""
    for i, content in enumerate(contents):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
            b" /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (5 + 2 * i)
        )
        objects.append(b"<< /Length %d%s >>\nstream\n" % (len(content), filter_entry) + content + b"\nendstream")
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def text_page(*lines: str) -> bytes:
    """An uncompressed content stream that shows each line in Helvetica (ASCII only)."""
    ops = [b"BT /F1 12 Tf 72 720 Td 14 TL"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(b"(%s) Tj T*" % escaped.encode("ascii"))
    ops.append(b"ET")
    return b"\n".join(ops)


def flate_bomb(inflated_mib: int) -> bytes:
    """One page whose single content stream inflates to `inflated_mib` MiB of NULs."""
    return minimal_pdf([deflate_with_zeros(b"", inflated_mib, b"")])


def inline_image_bomb(pages: int, mib_per_page: int) -> bytes:
    """Pages whose streams each stay under pypdf's own per-stream limits but add up past any memory limit.

    Each page holds one unfiltered inline image of NULs, which the content parser copies in one read.
    """
    prefix = b"BI /W %d /H 1 /BPC 8 /CS /G ID " % (mib_per_page * MIB)
    stream = deflate_with_zeros(prefix, mib_per_page, b"\nEI\n")
    return minimal_pdf([stream] * pages)
