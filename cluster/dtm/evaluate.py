"""Evaluation of a DTM at one epoch: generate from noise with every step's averaged parameters,
then the classifier-FID against held-out images beside its floor and ceiling, and the class
histogram of the generated images."""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import numpy as np

from . import fid as fid_lib
from .config import DTMConfig
from .generate import denoisers, generate
from .graph import StepGraph


@dataclasses.dataclass
class Evaluator:
    """Everything that stays fixed between evaluations: the denoiser, the feature map and the
    reference features.

    **Arguments:**

    - `config`: the validated config.
    - `graph`: the step graph.
    - `dataset`: the loaded dataset.
    - `cache`: the classifier cache file.
    """

    config: DTMConfig
    graph: StepGraph
    dataset: object
    cache: pathlib.Path

    def __post_init__(self):
        c, ds = self.config, self.dataset
        self.features = fid_lib.feature_map(ds.train, ds.train_labels, c.evaluation.classifier_hidden,
                                            c.evaluation.classifier_seed, self.cache)
        self.denoise = denoisers(self.graph, c)
        self.heldout = self.features(ds.heldout)
        train, noise = fid_lib.reference_sets(ds.train, c.generation.samples, c.generation.seed)
        self.floor = fid_lib.frechet_distance(self.features(train), self.heldout)
        self.ceiling = fid_lib.frechet_distance(self.features(noise), self.heldout)

    def __call__(self, params: list[dict]) -> dict:
        """Generate and score.

        **Arguments:**

        - `params`: every step's parameters, step 1 first.

        **Returns:** `fid`, `fid_floor`, `fid_ceiling`, `class_histogram` (or None), and `chain`
        (bool `[T + 1, samples, P]`, x_T first... x_0 at index 0).
        """
        c = self.config
        chain = generate(self.denoise, params, jax.random.key(c.generation.seed), c.generation.samples)
        out = {"fid": fid_lib.frechet_distance(self.features(chain[0]), self.heldout), "fid_floor": self.floor,
               "fid_ceiling": self.ceiling, "chain": chain}
        classes = self.features.classes(chain[0])
        out["class_histogram"] = None if classes is None else np.bincount(classes, minlength=self._n_classes()).tolist()
        return out

    def _n_classes(self) -> int:
        return int(self.features.w2.shape[1]) if self.features.w2 is not None else 0
