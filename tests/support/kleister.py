"""Small Kleister-NDA sets for the model tests: the real PDFs and gold labels, less model work."""

from __future__ import annotations

from pathlib import Path

from evaluation.kleister import LABELS_FILE, load_kleister

SHORT = (
    "170c3523298f4c60ae0935d7f800330d.pdf",
    "1897d60f2aaa58656bc4825339a59266.pdf",
    "1ebe90010883632839adf34be282271b.pdf",
)
"""The three train PDFs with the least text (4.9k-6.3k characters, 2-3 pages): a quarter of the model work of
the first three (62k characters), for checks that are about the command, not the model's quality."""


def short_set(kleister_dir: Path, tmp_path: Path) -> Path:
    """A Kleister folder of the `SHORT` PDFs (links) and their gold labels, as `load_kleister` reads the set."""
    folder = tmp_path / "kleister-short"
    folder.mkdir()
    kept = [(pdf, labels) for pdf, labels in load_kleister(kleister_dir) if pdf.name in SHORT]
    assert len(kept) == len(SHORT)
    lines = [f"{pdf.name}\t{' '.join(labels)}\n" for pdf, labels in kept]
    (folder / LABELS_FILE).write_text("".join(lines), encoding="utf-8")
    for pdf, _ in kept:
        (folder / pdf.name).symlink_to(pdf)
    return folder
