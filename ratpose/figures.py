"""Matplotlib figures without pyplot (Agg), saved as PNGs that describe their own panels.

Each PNG carries a "Description" text chunk: JSON, one entry per panel (title, axis labels, legend
entries), so tests and tools can check what a picture shows without reading pixels.
"""
from __future__ import annotations

import json
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure drawn by Agg."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def panels(figure: Figure) -> list[dict]:
    """Title, axis labels and legend entries of every panel (colour bars excluded)."""
    out = []
    for ax in figure.axes:
        if ax.get_label() == "<colorbar>":
            continue
        legend = ax.get_legend()
        out.append({"title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
                    "zlabel": ax.get_zlabel() if hasattr(ax, "get_zlabel") else "",
                    "legend": [t.get_text() for t in legend.get_texts()] if legend else []})
    return out


def save(figure: Figure, path, dpi: int = 100) -> Path:
    """Save as PNG with the panels' description (see panels) in its metadata; returns the path."""
    path = Path(path)
    figure.savefig(path, dpi=dpi, metadata={"Description": json.dumps(panels(figure))})
    return path


def read_panels(path) -> list[dict]:
    """The panel description saved in a PNG by save()."""
    from PIL import Image

    with Image.open(path) as image:
        return json.loads(image.text["Description"])
