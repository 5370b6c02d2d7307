"""Entry point of the page-render child process (`python -m workers.documents.render_child`); see `sandbox`.

Kept apart from `render` so that running it as `__main__` never re-imports a module the package has
already loaded.
"""

from __future__ import annotations

from workers.documents.render import draw_page
from workers.documents.sandbox import child_main

if __name__ == "__main__":
    child_main(draw_page)
