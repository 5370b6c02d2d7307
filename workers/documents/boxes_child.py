"""Entry point of the text-boxes child process (`python -m workers.documents.boxes_child`); see `sandbox`.

Kept apart from `boxes` so that running it as `__main__` never re-imports a module the package has
already loaded.
"""

from __future__ import annotations

from workers.documents.boxes import locate_words
from workers.documents.sandbox import child_main

if __name__ == "__main__":
    child_main(locate_words)
