"""`run.png`: lattice snapshots drawn pixel for pixel (no resampling, so no moiré), in the spin
colours of the key; large lattices cropped rather than shrunk."""

import numpy as np
import pytest

from cluster.palette import state_colors
from cluster.run.plots import MAX_SITES, plot_run


def _draw(tmp_path, snapshots, categories=None):
    rng = np.random.default_rng(0)
    sweep = np.arange(1, 11)
    path = tmp_path / "run.png"
    boxes = plot_run(path, title="test lattice", beta=0.3, sweep=sweep, energy=rng.normal(size=(3, 10)),
                     order=rng.normal(size=(3, 10)), warmup_sweeps=4, onsager=-0.7, order_label="magnetization",
                     snapshots=snapshots, snapshot_sweep=np.arange(len(snapshots)), categories=categories)
    import matplotlib.image

    return matplotlib.image.imread(path)[..., :3], boxes


@pytest.mark.parametrize("side, categories", [(32, None), (256, None), (300, None), (20, 4)])
def test_snapshots_are_drawn_site_for_site(tmp_path, side, categories):
    rng = np.random.default_rng(1)
    if categories is None:
        snapshots = rng.choice(np.array([-1, 1], np.int8), size=(2, side, side))
    else:
        snapshots = rng.integers(0, categories, size=(2, side, side)).astype(np.uint8)
    png, boxes = _draw(tmp_path, snapshots, categories)
    shown = min(side, MAX_SITES)
    colors = state_colors(categories)
    for (top, left, height, width), snapshot in zip(boxes, snapshots):
        zoom = height // shown
        assert zoom >= 1 and height == width == zoom * shown
        drawn = png[top : top + height : zoom, left : left + width : zoom]  # one pixel per site
        index = (snapshot[:shown, :shown] > 0).astype(int) if categories is None else snapshot[:shown, :shown]
        np.testing.assert_allclose(drawn, colors[index], atol=1 / 255)
        # whole blocks of pixels: no site bleeds into its neighbour
        block = png[top : top + height, left : left + width].reshape(shown, zoom, shown, zoom, 3)
        assert np.ptp(block, axis=(1, 3)).max() <= 1 / 255
