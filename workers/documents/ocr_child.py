"""Entry point of the OCR child process (`python -m workers.documents.ocr_child`); see `sandbox` and `ocr`.

Kept apart from `ocr` so that running it as `__main__` never re-imports a module the package has
already loaded.
"""

from __future__ import annotations

from workers.documents.ocr import ocr_pages
from workers.documents.sandbox import child_main

if __name__ == "__main__":
    child_main(ocr_pages)
