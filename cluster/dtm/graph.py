"""The step graph: a side x side grid whose nodes are coupled to the neighbours at a fixed set of
offsets (the sparse local graph a chip implements), with the pixels of x_{t-1} (the outputs)
spread over it and the other grid nodes latent, plus one clamped input node per pixel of x_t,
coupled to its output. Built from arrays: no Python loop over nodes or edges."""

from __future__ import annotations

import dataclasses

import numpy as np

import distthrml as dt
from partition.generators import checkerboard_colors

from ..config_file import ConfigError


def grid_offset_edges(side: int, offsets: list[tuple[int, int]]) -> np.ndarray:
    """The edges `[E, 2]` (node `r * side + c`) joining every grid node to the nodes at each
    offset and its rotation by 90 degrees (the other two rotations are the same edges seen from
    the other end); open boundaries, so nodes near the border have fewer neighbours.

    **Arguments:**

    - `side`: the grid's side.
    - `offsets`: `(dy, dx)` pairs, no two equal up to rotation.
    """
    ids = np.arange(side * side, dtype=np.int64).reshape(side, side)
    parts = []
    for dy, dx in offsets:
        for a, b in ((dy, dx), (-dx, dy)):
            src = ids[max(0, -a): side - max(0, a), max(0, -b): side - max(0, b)]
            dst = ids[max(0, a): side + min(0, a), max(0, b): side + min(0, b)]
            parts.append(np.stack([src.ravel(), dst.ravel()], axis=1))
    return np.concatenate(parts) if parts else np.zeros((0, 2), np.int64)


def pixel_sites(image_shape: tuple[int, int], side: int, placement: str, seed: int) -> np.ndarray:
    """The grid node of every pixel (row-major pixel order).

    **Arguments:**

    - `image_shape`: the images' rows and columns.
    - `side`: the grid's side.
    - `placement`: `spread` (the image lattice stretched evenly over the grid) or `random`.
    - `seed`: the random placement's seed.
    """
    rows, cols = image_shape
    if placement == "spread":
        if side < max(rows, cols):
            raise ConfigError(f"model.grid_side {side} is smaller than the {rows}x{cols} images (placement 'spread')")
        r = ((np.arange(rows) + 0.5) * side / rows).astype(np.int64)
        c = ((np.arange(cols) + 0.5) * side / cols).astype(np.int64)
        return (r[:, None] * side + c[None, :]).ravel()
    if side * side < rows * cols:
        raise ConfigError(f"model.grid_side {side} gives {side * side} grid nodes, fewer than the {rows * cols} pixels")
    return np.sort(np.random.default_rng(seed).choice(side * side, rows * cols, replace=False)).astype(np.int64)


@dataclasses.dataclass(frozen=True, eq=False)
class StepGraph:
    """One diffusion step's graph and blocks (every step of a model has the same graph).

    **Attributes:**

    - `side`, `n_pixels`: grid side; pixels (= outputs = inputs).
    - `grid_edges`: `[E, 2]` grid node numbers of the learned couplings.
    - `sites`: `[P]` the grid node of every pixel.
    - `latent`: `[L]` the other grid nodes, ascending.
    - `colors`: `[side**2]` checkerboard colour of every grid node.
    - `nodes`: all nodes: grid (row-major) then inputs (pixel order).
    - `grid`, `outputs`, `inputs`: Blocks of the grid, the outputs and the inputs.
    - `negative_blocks`: the grid's two colour classes (free in the negative phase).
    - `positive_blocks`: the latents' two colour classes (free in the positive phase).
    - `negative_index`, `positive_index`: per block, the grid positions of its nodes.
    """

    side: int
    n_pixels: int
    grid_edges: np.ndarray
    sites: np.ndarray
    latent: np.ndarray
    colors: np.ndarray
    nodes: dt.Block
    grid: dt.Block
    outputs: dt.Block
    inputs: dt.Block
    negative_blocks: list
    positive_blocks: list
    negative_index: list
    positive_index: list

    @property
    def n_grid(self) -> int:
        return self.side * self.side

    @property
    def n_nodes(self) -> int:
        return self.n_grid + self.n_pixels

    @property
    def edges(self) -> np.ndarray:
        """Every coupling `[E + P, 2]`: the grid's, then input p to its output."""
        inputs = np.stack([self.n_grid + np.arange(self.n_pixels), self.sites], axis=1)
        return np.concatenate([self.grid_edges, inputs]).astype(np.int64)


def build_step_graph(image_shape: tuple[int, int], side: int, offsets: list[tuple[int, int]], placement: str,
                     seed: int) -> StepGraph:
    """The step graph of a DTM.

    **Arguments:**

    - `image_shape`: the images' rows and columns.
    - `side`: the grid's side.
    - `offsets`: the neighbourhood offsets (dy + dx odd: the checkerboard colours it).
    - `placement`, `seed`: where the pixels go (`pixel_sites`).
    """
    n_grid = side * side
    sites = pixel_sites(image_shape, side, placement, seed)
    is_output = np.zeros(n_grid, bool)
    is_output[sites] = True
    latent = np.flatnonzero(~is_output)
    if len(latent) == 0:
        raise ConfigError(f"model.grid_side {side}: the {len(sites)} pixels fill the grid, leaving no latent nodes")
    colors = checkerboard_colors(side, side)
    edges = grid_offset_edges(side, offsets)
    nodes = dt.make_block(dt.SpinNode, n_grid + len(sites))
    negative_index = [np.flatnonzero(colors == c) for c in (0, 1)]
    positive_index = [latent[colors[latent] == c] for c in (0, 1)]
    return StepGraph(
        side, len(sites), edges, sites, latent, colors, nodes, nodes[:n_grid], nodes[sites], nodes[n_grid:],
        [nodes[i] for i in negative_index], [nodes[i] for i in positive_index if len(i)],
        negative_index, [i for i in positive_index if len(i)],
    )
