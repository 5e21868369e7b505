"""Jinja2 templates from the top-level templates/ dir (shipped in the wheel as bootstrap/_templates)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2


def templates_dir() -> Path:
    shipped = Path(__file__).resolve().parent.parent / "_templates"
    if shipped.is_dir():
        return shipped
    return Path(__file__).resolve().parents[2] / "templates"  # a source checkout


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render_template(name: str, **values: Any) -> str:
    return _env().get_template(name).render(**values)
