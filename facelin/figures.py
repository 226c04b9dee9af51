"""Figures the book's chapters share."""
from __future__ import annotations

import numpy as np

__all__ = ["image_grid"]


def image_grid(images, rows: int, cols: int, titles=None, landmarks=None,
               size: float = 1.6, row_labels=None):
    """Images on a ``rows`` x ``cols`` grid of axes, without ticks; returns the figure.

    images : a sequence of (H, W) or (H, W, 3) arrays, uint8 (0..255) or float (0..1);
        cells beyond ``len(images)`` stay empty.
    titles : one per image (or None); landmarks : one (P, 2) array per image, drawn as
        red dots; size : inches per cell; row_labels : one label left of each row.
    """
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(
        rows, cols, figsize=(cols * size, rows * size), squeeze=False
    )
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= len(images):
            continue
        image = np.asarray(images[index])
        ax.imshow(
            image, cmap="gray", vmin=0, vmax=255 if image.dtype == np.uint8 else 1
        )
        if landmarks is not None:
            ax.plot(
                landmarks[index][:, 0],
                landmarks[index][:, 1],
                ".",
                color="tab:red",
                ms=2,
            )
        if titles is not None:
            ax.set_title(titles[index], fontsize=8)
    for ax, label in zip(axes[:, 0], row_labels or ()):
        ax.text(-0.1, 0.5, label, transform=ax.transAxes, ha="right", va="center",
                fontsize=9)
    fig.tight_layout()
    return fig
