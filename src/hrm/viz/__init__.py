"""A browser view of how a model reasons: `hrm viz`.

The server (`hrm.viz.server.create_app`, Starlette) serves one page (`static/`: our own HTML, CSS
and JavaScript, no build step) and a JSON API: solve a puzzle with a trace, generate puzzles, read
a training run's metrics as they grow, browse a dataset. `hrm.viz.export.export_html` writes the
page of one trace as a single self-contained HTML file.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "export_html", "render_html"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `hrm --help` does not import Starlette.
    if name == "create_app":
        from hrm.viz.server import create_app

        return create_app
    if name in ("export_html", "render_html"):
        from hrm.viz import export

        return getattr(export, name)
    raise AttributeError(f"module 'hrm.viz' has no attribute {name!r}")
