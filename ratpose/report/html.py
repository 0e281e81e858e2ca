"""A self-contained HTML page (inline CSS, images referenced relative to the page, no scripts)."""
from __future__ import annotations

from dataclasses import dataclass
from html import escape

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; padding: 0 1em; max-width: 1300px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; }
th { background: #f0f0f0; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #ddd; } figure { margin: 0.3em 0; }
.frames { display: flex; flex-wrap: wrap; gap: 0.6em; } .frames figure { flex: 1 1 45%; } .frames img { width: 100%; }
.missing { color: #a33; font-style: italic; } nav a { margin-right: 1em; }
.legend span { display: inline-block; margin-right: 1.2em; }
.legend i { display: inline-block; width: 0.9em; height: 0.9em; border-radius: 50%; margin-right: 0.3em;
  vertical-align: middle; border: 1px solid #555; }
"""


@dataclass(frozen=True)
class Section:
    """One part of the page: ``body`` is HTML (use image(), table(), missing())."""

    id: str
    heading: str
    body: str


def image(src: str, alt: str, caption: str | None = None) -> str:
    """An image by path relative to the page, with an optional caption."""
    tag = f'<img src="{escape(src)}" alt="{escape(alt)}">'
    return f"<figure>{tag}<figcaption>{escape(caption)}</figcaption></figure>" if caption else tag


def table(header: list[str], rows: list[list]) -> str:
    """A table; numbers are right-aligned."""
    def cell(value) -> str:
        numeric = isinstance(value, (int, float))
        return f'<td class="num">{escape(str(value))}</td>' if numeric else f"<td>{escape(str(value))}</td>"

    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def colour_legend(entries: list[tuple[str, tuple[int, int, int]]]) -> str:
    """A line of coloured dots with names: (name, RGB 0-255) each."""
    items = "".join(f'<span><i style="background: rgb{tuple(int(c) for c in rgb)}"></i>{escape(name)}</span>'
                    for name, rgb in entries)
    return f'<p class="legend">{items}</p>'


def missing(reason: str) -> str:
    """The note shown instead of a section whose data are not there."""
    return f'<p class="missing">Not available: {escape(reason)}</p>'


def page(title: str, subtitle: str, sections: list[Section]) -> str:
    """The whole page, with a navigation bar to the sections."""
    nav = "".join(f'<a href="#{escape(s.id)}">{escape(s.heading)}</a>' for s in sections)
    body = "".join(f'<section id="{escape(s.id)}"><h2>{escape(s.heading)}</h2>{s.body}</section>' for s in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1><p>{escape(subtitle)}</p>"
            f"<nav>{nav}</nav>{body}</body></html>\n")
