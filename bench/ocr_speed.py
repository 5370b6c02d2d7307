"""Seconds per OCR'd page, and how well it read, on the scanned test PDFs.

Run: .venv/bin/python -m bench.ocr_speed [--engines rapidocr tesseract] [--threads 1] [--runs 1]
Each run is a whole `read_document` (the text child, then the OCR child with its model load), so the
figure is what a user waits for per page; CPU seconds (all child processes) are printed beside it,
since on a shared machine wall time also measures the neighbours. Prints one line per engine and file,
then the mean seconds per page per engine. All three files are scans of the same page (OCRmyPDF test
resources: upright, skewed, and turned to each cardinal direction), so `ocrmypdf-linn.txt` is the
reference for every page: character error rate (CER) is the Levenshtein distance over
whitespace-normalised text divided by the reference length, worst page shown, with word recall.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

from workers.documents import Document, read_document
from workers.documents.model import LimitsSpec, OcrSpec
from workers.documents.ocr import character_error_rate, word_recall

HOSTILE = Path(__file__).resolve().parents[1].parent / "shared/data/hostile-pdfs"
FILES = ("ocrmypdf-linn.pdf", "ocrmypdf-skew.pdf", "ocrmypdf-cardinal.pdf")
REFERENCE = HOSTILE / "ocrmypdf-linn.txt"


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _page_texts(doc: Document) -> list[str]:
    return [doc.text[p.start : p.end] for p in doc.ocr_pages]


def main() -> None:
    """Print seconds per page and quality per engine and file."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engines", nargs="+", default=["rapidocr"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dpi", type=int, default=OcrSpec().dpi)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--files", nargs="+", default=list(FILES))
    args = parser.parse_args()
    reference = REFERENCE.read_text(encoding="utf-8")
    for engine in args.engines:
        spec = OcrSpec(engine=engine, threads=args.threads, dpi=args.dpi)
        wall_per_page: list[float] = []
        cpu_per_page: list[float] = []
        for name in args.files:
            for _ in range(args.runs):
                cpu_started, started = _children_cpu_s(), time.monotonic()
                doc = read_document(HOSTILE / name, limits=LimitsSpec(ocr=spec))
                elapsed, cpu = time.monotonic() - started, _children_cpu_s() - cpu_started
                pages = max(len(doc.ocr_pages), 1)
                wall_per_page.append(elapsed / pages)
                cpu_per_page.append(cpu / pages)
            texts = _page_texts(doc)
            cer = max((character_error_rate(t, reference) for t in texts), default=1.0)
            recall = min((word_recall(t, reference) for t in texts), default=0.0)
            confidence = min((p.ocr_confidence or 0.0 for p in doc.ocr_pages), default=0.0)
            print(
                f"engine={engine:9s} file={name:22s} pages={len(doc.ocr_pages)} seconds={elapsed:6.2f} "
                f"cpu_s={cpu:6.2f} worst_cer={cer:.4f} worst_word_recall={recall:.3f} "
                f"min_confidence={confidence:.3f} rotation={[p.rotation for p in doc.ocr_pages]}",
                flush=True,
            )
        print(
            f"engine={engine} threads={args.threads} dpi={args.dpi} "
            f"seconds_per_page={statistics.mean(wall_per_page):.2f} cpu_s_per_page={statistics.mean(cpu_per_page):.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
