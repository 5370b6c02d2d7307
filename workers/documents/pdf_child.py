"""Entry point of the PDF child process (`python -m workers.documents.pdf_child`); see `sandbox`.

Kept apart from `pdf` so that running it as `__main__` never re-imports a module the package has
already loaded.
"""

from __future__ import annotations

from workers.documents.pdf import extract_pages
from workers.documents.sandbox import child_main

if __name__ == "__main__":
    child_main(extract_pages)
