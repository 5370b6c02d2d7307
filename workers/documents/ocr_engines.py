"""OCR engines behind one small protocol: an upright-or-not grey page image in, lines of boxed words out.

Child side only. Both engines run offline on the CPU inside the OCR child's rlimits: RapidOCR (PP-OCR
models run by onnxruntime, shipped inside the wheel) and Debian's tesseract binary, started as a child
of the OCR child so it inherits the same limits. Each engine turns the page upright itself (90/180/270
degree scans are common) and reports word boxes in the coordinates of the image it was given.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final, Protocol

from workers.documents.layout import OcrLine, OcrWord
from workers.errors import ConfigError, WorkerError

if TYPE_CHECKING:
    import numpy as np

ENGINES: Final = ("rapidocr", "tesseract")
# Detection works on a copy of the page this long on its longer side (about 150 dpi for a letter
# page): enough for 8 pt print, and far cheaper than detecting at full resolution.
_DET_MAX_SIDE: Final = 1600
# Lines below this recognition score are noise (specks, rules, pictures), not text: kept out of the
# page text, they still lower the page's confidence.
_MIN_LINE_SCORE: Final = 0.5
# The up-or-down vote looks at this many of the longest lines.
_ORIENTATION_SAMPLE: Final = 24
# A text line is at least this many times longer than it is tall; squarer boxes say nothing of direction.
_ELONGATED: Final = 2.0
# A gap between words of more than this many character pitches is a column gutter, not a space.
_GUTTER_PITCHES: Final = 3.5
_TESSERACT_ROTATE = re.compile(r"^Rotate:\s*(\d+)", re.MULTILINE)

Quad = tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]


class EngineUnavailable(ConfigError):
    """The configured engine is not installed here: a deployment problem, not the document's."""


class OcrEngine(Protocol):
    """Reads one page image; returns its lines (quads in the upright frame) and the rotation applied."""

    name: str

    def read(self, image: np.ndarray, *, timeout_s: float) -> tuple[list[OcrLine], int]: ...


def make_engine(name: str, *, threads: int) -> OcrEngine:
    """The engine called `name`; raises EngineUnavailable if it is unknown or not installed."""
    if name == "rapidocr":
        return RapidOcrEngine(threads=threads)
    if name == "tesseract":
        return TesseractEngine(threads=threads)
    raise EngineUnavailable(f"unknown OCR engine {name!r}; choose one of {', '.join(ENGINES)}")


# --- geometry ---------------------------------------------------------------------------------


def rotate_image(image: np.ndarray, degrees: int) -> np.ndarray:
    """The image turned clockwise by a multiple of 90 degrees (a contiguous copy)."""
    import numpy as np

    return np.ascontiguousarray(np.rot90(image, k=-(degrees // 90) % 4))


def unrotate_point(x: float, y: float, degrees: int, width: int, height: int) -> tuple[float, float]:
    """Map a point of the image turned clockwise by `degrees` back to the original `width` x `height` image."""
    degrees %= 360
    if degrees == 90:
        return y, height - x
    if degrees == 180:
        return width - x, height - y
    if degrees == 270:
        return width - y, x
    return x, y


def _box_in_original(
    points: Sequence[tuple[float, float]], degrees: int, width: int, height: int
) -> tuple[float, float, float, float]:
    """Axis-aligned box, in the original image, of points given in the rotated one."""
    mapped = [unrotate_point(x, y, degrees, width, height) for x, y in points]
    xs, ys = [p[0] for p in mapped], [p[1] for p in mapped]
    return (max(min(xs), 0.0), max(min(ys), 0.0), min(max(xs), float(width)), min(max(ys), float(height)))


def _quad_size(quad: Any) -> tuple[float, float]:
    """Width (top edge) and height (left edge) of a tl, tr, br, bl quad."""
    (x0, y0), (x1, y1), _, (x3, y3) = quad
    return math.hypot(x1 - x0, y1 - y0), math.hypot(x3 - x0, y3 - y0)


# --- RapidOCR ---------------------------------------------------------------------------------


class RapidOcrEngine:
    """PP-OCRv4 detection and recognition through rapidocr-onnxruntime, models from the wheel.

    Detection runs on a reduced copy; recognition reads crops of the full-resolution page, which is
    what keeps the spaces between words. Orientation: lines that stand upright mean a page turned by
    90 degrees; the direction classifier's vote over the longest lines then decides 0 or 180.
    """

    name = "rapidocr"

    def __init__(self, *, threads: int) -> None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as e:
            raise EngineUnavailable("the rapidocr engine needs the rapidocr-onnxruntime package") from e
        # Its logger would print progress (never content); keep the child quiet regardless.
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)
        logging.getLogger("OrtInferSession").setLevel(logging.ERROR)
        import cv2

        cv2.setNumThreads(max(threads, 1))
        # rapidocr 1.4.4 copies the global thread settings over the per-model ones, so only these take
        # effect. One line per recognition call: a batch pads every line to its longest, which cost
        # more CPU than it saved in measurements on full pages.
        self._ocr = RapidOCR(
            print_verbose=False,
            intra_op_num_threads=max(threads, 1),
            inter_op_num_threads=1,
            rec_batch_num=1,
        )

    def read(self, image: np.ndarray, *, timeout_s: float) -> tuple[list[OcrLine], int]:
        """Lines of the page (quads in the upright frame, word boxes in `image`) and the rotation applied."""
        import cv2
        import numpy as np

        height, width = image.shape[:2]
        factor = min(1.0, _DET_MAX_SIDE / max(height, width))
        small = image if factor == 1.0 else cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        quads = self._detect(small)
        rotation = 0
        if _mostly_vertical(quads):
            rotation = 90
            small = rotate_image(small, 90)
            quads = self._detect(small)
        if self._upside_down(small, quads):
            rotation += 180
            small_h, small_w = small.shape[:2]
            # Turning the page half way round swaps the corners: the old br is the new tl.
            quads = [
                np.array([[small_w - x, small_h - y] for x, y in (q[2], q[3], q[0], q[1])], dtype=np.float32)
                for q in quads
            ]
        if not quads:
            return [], rotation
        upright = rotate_image(image, rotation) if rotation else image
        full_quads = [np.asarray(q, dtype=np.float32) / factor for q in quads]
        crops = [_bgr(_crop(upright, q)) for q in full_quads]
        results, _ = self._ocr.text_rec(crops, True)
        lines = []
        for quad, (text, score, info) in zip(full_quads, results, strict=True):
            if not text.strip():
                continue
            read = _rapid_lines(text, info, quad, rotation, width, height)
            # Below the score the text is noise (specks, rules, pictures, or an unreadable scan).
            lines += read if score >= _MIN_LINE_SCORE else [replace(line, rejected=True) for line in read]
        return lines, rotation

    def _detect(self, gray: np.ndarray) -> list[np.ndarray]:
        boxes, _ = self._ocr.text_det(_bgr(gray))
        return [] if boxes is None else list(boxes)

    def _upside_down(self, gray: np.ndarray, quads: Sequence[np.ndarray]) -> bool:
        """The direction classifier's score-weighted vote over the longest lines says 180 degrees."""
        sizes = [(_quad_size(q), q) for q in quads]
        lines = [q for (w, h), q in sizes if w > _ELONGATED * h]
        lines.sort(key=lambda q: -_quad_size(q)[0])
        sample = lines[:_ORIENTATION_SAMPLE]
        if not sample:
            return False
        crops = [_bgr(_crop(gray, q)) for q in sample]
        _, votes, _ = self._ocr.text_cls(crops)
        flipped = sum(score for label, score in votes if label == "180")
        upright = sum(score for label, score in votes if label != "180")
        return bool(flipped > upright)


def _mostly_vertical(quads: Sequence[Any]) -> bool:
    """Most elongated boxes stand upright: the text runs up or down the page."""
    sizes = [_quad_size(q) for q in quads]
    tall = sum(1 for w, h in sizes if h > _ELONGATED * w)
    wide = sum(1 for w, h in sizes if w > _ELONGATED * h)
    return tall > wide


def _bgr(gray: np.ndarray) -> np.ndarray:
    """The three-channel copy the PP-OCR models expect."""
    import cv2

    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def _crop(image: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The quad's content warped to an upright rectangle (so slightly skewed lines read straight)."""
    import cv2
    import numpy as np

    width, height = _quad_size(quad)
    w, h = max(round(width), 1), max(round(height), 1)
    target = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(np.asarray(quad, dtype=np.float32), target)
    return cv2.warpPerspective(image, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)


def _rapid_lines(text: str, info: Any, quad: np.ndarray, rotation: int, width: int, height: int) -> list[OcrLine]:
    """Split a recognised line into words placed along it by their characters' CTC columns.

    A detected box sometimes bridges a narrow column gutter; a gap of several character widths between
    two words splits it back into two lines, so the reading order sees two columns, not one wide line.
    """
    columns_total, word_chars, word_columns, _, char_scores = info
    chars = [c for word in word_chars for c in word]
    columns = [c for word in word_columns for c in word]
    if "".join(chars) != text or len(char_scores) != len(text) or columns_total <= 0:
        # Not the shape we expect from this rapidocr version: spread the characters evenly instead.
        columns_total = float(len(text))
        columns = list(range(len(text)))
        char_scores = [1.0] * len(text)
    steps = sorted(b - a for a, b in itertools.pairwise(columns))
    pitch = float(steps[len(steps) // 2]) if steps else float(columns_total)
    p0, p1, p2, p3 = ((float(x), float(y)) for x, y in quad)

    def along(t: float, a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
        return a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])

    pieces: list[list[tuple[OcrWord, float, float]]] = [[]]
    previous_last: int | None = None
    for match in re.finditer(r"\S+", text):
        first, last = match.start(), match.end() - 1
        if previous_last is not None and columns[first] - columns[previous_last] > _GUTTER_PITCHES * pitch:
            pieces.append([])
        previous_last = last
        t0 = max(0.0, (columns[first] + 0.5 - pitch / 2) / columns_total)
        t1 = min(1.0, (columns[last] + 0.5 + pitch / 2) / columns_total)
        corners = [along(t0, p0, p1), along(t1, p0, p1), along(t1, p3, p2), along(t0, p3, p2)]
        scores = char_scores[first : last + 1]
        word = OcrWord(
            text=match.group(),
            box=_box_in_original(corners, rotation, width, height),
            confidence=float(sum(scores) / len(scores)),
        )
        pieces[-1].append((word, t0, t1))
    lines = []
    for piece in pieces:
        if not piece:
            continue
        t0, t1 = piece[0][1], piece[-1][2]
        quad_corners = (along(t0, p0, p1), along(t1, p0, p1), along(t1, p3, p2), along(t0, p3, p2))
        lines.append(OcrLine(words=tuple(w for w, _, _ in piece), quad=quad_corners))
    return lines


# --- tesseract --------------------------------------------------------------------------------


class TesseractEngine:
    """Debian's `tesseract` binary (packages tesseract-ocr, tesseract-ocr-eng, tesseract-ocr-osd).

    Its own page segmentation gives the reading order; orientation comes from its OSD mode (--psm 0).
    """

    name = "tesseract"

    def __init__(self, *, threads: int, language: str = "eng") -> None:
        binary = shutil.which("tesseract")
        if binary is None:
            raise EngineUnavailable("the tesseract engine needs the tesseract binary (Debian: tesseract-ocr)")
        self._binary = binary
        self._language = language
        self._env = {**os.environ, "OMP_THREAD_LIMIT": str(max(threads, 1))}

    def read(self, image: np.ndarray, *, timeout_s: float) -> tuple[list[OcrLine], int]:
        """Lines of the page in tesseract's reading order, word boxes in `image`, and the rotation applied."""
        height, width = image.shape[:2]
        rotation = self._orientation(image, timeout_s)
        upright = rotate_image(image, rotation) if rotation else image
        tsv = self._run(upright, ["-l", self._language, "--psm", "3", "tsv"], timeout_s)
        return _tesseract_lines(tsv, rotation, width, height), rotation

    def _orientation(self, image: np.ndarray, timeout_s: float) -> int:
        """Degrees to turn the page clockwise, per tesseract's OSD; 0 when it cannot tell."""
        try:
            report = self._run(image, ["--psm", "0", "-l", "osd"], timeout_s)
        except EngineFailed:
            # Too few characters to judge (a nearly blank page): read it as it is.
            return 0
        match = _TESSERACT_ROTATE.search(report)
        return int(match.group(1)) % 360 if match else 0

    def _run(self, image: np.ndarray, args: list[str], timeout_s: float) -> str:
        import cv2

        ok, png = cv2.imencode(".png", image)
        if not ok:
            raise EngineFailed("could not encode the page image")
        try:
            proc = subprocess.run(
                [self._binary, "stdin", "stdout", *args],
                input=png.tobytes(),
                capture_output=True,
                timeout=max(timeout_s, 1.0),
                env=self._env,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise EngineFailed("tesseract timed out") from e
        if proc.returncode != 0:
            # stderr may quote nothing of the page, but keep it out of messages anyway.
            raise EngineFailed(f"tesseract exited with status {proc.returncode}")
        return proc.stdout.decode("utf-8", errors="replace")


class EngineFailed(WorkerError):
    """The engine could not read this page (it crashed, or ran out of time)."""


def _tesseract_lines(tsv: str, rotation: int, width: int, height: int) -> list[OcrLine]:
    """Words of tesseract's TSV grouped into its lines; a block or paragraph change starts a new block."""
    lines: dict[tuple[int, int, int], list[tuple[OcrWord, tuple[float, float, float, float]]]] = {}
    rows = tsv.splitlines()
    for row in rows[1:]:
        cells = row.split("\t")
        if len(cells) != 12 or cells[0] != "5" or not cells[11].strip():
            continue
        block, paragraph, line = int(cells[2]), int(cells[3]), int(cells[4])
        left, top, w, h = (float(c) for c in cells[6:10])
        confidence = max(float(cells[10]), 0.0) / 100
        upright_box = (left, top, left + w, top + h)
        corners = [(left, top), (left + w, top), (left + w, top + h), (left, top + h)]
        word = OcrWord(cells[11].strip(), _box_in_original(corners, rotation, width, height), confidence)
        lines.setdefault((block, paragraph, line), []).append((word, upright_box))
    out = []
    for (block, paragraph, _), entries in lines.items():
        x0 = min(b[0] for _, b in entries)
        y0 = min(b[1] for _, b in entries)
        x1 = max(b[2] for _, b in entries)
        y1 = max(b[3] for _, b in entries)
        quad: Quad = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
        out.append(OcrLine(words=tuple(w for w, _ in entries), quad=quad, block=block * 10_000 + paragraph))
    return out
