"""TURTLE (Gadetsky, Jiang, Brbić, ICML 2024): find the labeling that linear classifiers fit best in every space.

Implemented from the paper's description (first-order alternating scheme). The whole training loop
runs on the device without host round trips: features stay resident as one tensor per space,
batches are drawn on the device, gradients are written by hand and both levels use a fused Adam
update on one flat parameter tensor each.
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from turtle_core.constants import TURTLE_BATCH_SIZE, TURTLE_GAMMA, TURTLE_INNER_STEPS, TURTLE_OUTER_STEPS
from turtle_core.discovery.engine import (  # noqa: F401 (re-exported: callers import them from here)
    CHECK_EVERY,
    GRAPH_STEPS,
    LOG_EVERY,
    TurtleEngine,
    head_probabilities,
)
from turtle_core.discovery.features import (
    DEFAULT_N_COMPONENTS,
    DEFAULT_PREPROCESSING,
    PreprocessingMethod,
    SpacePreprocessor,
    effective_components,
)
from turtle_core.discovery.runtime import (  # noqa: F401 (re-exported)
    check_spaces,
    cpu_threads,
    default_cpu_threads,
    resolve_device,
    tf32_matmuls,
)
from turtle_core.discovery.starts import cluster_means, kmeans_init_labels  # noqa: F401 (re-exported)
from turtle_core.progress import ProgressCallback, ProgressMeter, check_cancel

Precision = Literal["tf32", "fp32", "bf16", "auto"]
Init = Literal["kmeans", "kmeans_cosine", "random"]
INITS: tuple[str, ...] = ("kmeans", "kmeans_cosine", "random")


class Turtle:
    """TURTLE unsupervised transfer: discovers `n_clusters` categories from K frozen feature spaces.

    Parameters follow the paper (T = `outer_steps`, M = `inner_steps`, batch 10k, γ = `gamma`).
    `warm_start` keeps the inner classifiers (and their Adam state) across outer steps; otherwise
    they are re-initialised every outer step. `init="kmeans"` starts the task heads at the
    nearest-centroid rule of a k-means clustering of the input spaces (`"kmeans_cosine"`: of their
    L2-normalised rows; `"random"`: the paper's random initialisation). `preprocessing` (see
    `turtle_core.features`) is fitted per space on the training rows and re-applied by `predict_proba`. `precision="tf32"` (the
    default) keeps float32 features and runs the training's matmuls on a GPU's TF32 tensor cores (plain
    float32 on the CPU); "fp32" keeps them in full float32 on the GPU too; "bf16" stores features and
    runs the matmuls in bfloat16 ("auto": bf16 on CUDA, fp32 elsewhere). `cuda_graph`
    replays the loop as CUDA graphs on GPUs (falls back to eager if the capture fails its self-check).
    `num_threads` bounds torch's CPU threads during the fit (default: half the cores).

    Learned: `labels_`, `probabilities_` (N × C), `confidence_` (max probability), `n_features_in_`,
    `head_weights_` / `head_biases_` (per space, in the preprocessed space), `preprocessors_`,
    `history_` (loss every 100 steps), `n_iter_`, `fit_seconds_`, `device_`.
    """

    def __init__(
        self,
        n_clusters: int = 10,
        gamma: float = TURTLE_GAMMA,
        *,
        outer_steps: int = TURTLE_OUTER_STEPS,
        inner_steps: int = TURTLE_INNER_STEPS,
        batch_size: int = TURTLE_BATCH_SIZE,
        outer_lr: float = 1e-3,
        inner_lr: float = 1e-3,
        warm_start: bool = True,
        preprocessing: PreprocessingMethod = DEFAULT_PREPROCESSING,
        n_components: int | None = DEFAULT_N_COMPONENTS,
        precision: Precision = "tf32",
        device: str | torch.device | None = None,
        init: Init = "kmeans",
        cuda_graph: bool = True,
        num_threads: int | None = None,
        random_state: int | None = None,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.gamma = gamma
        self.outer_steps = outer_steps
        self.inner_steps = inner_steps
        self.batch_size = batch_size
        self.outer_lr = outer_lr
        self.inner_lr = inner_lr
        self.warm_start = warm_start
        self.preprocessing = preprocessing
        self.n_components = n_components
        self.precision = precision
        self.device = device
        self.init = init
        self.cuda_graph = cuda_graph
        self.num_threads = num_threads
        self.random_state = random_state
        self.progress = progress
        self.cancel = cancel

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments (scikit-learn style)."""
        names = [
            "n_clusters",
            "gamma",
            "outer_steps",
            "inner_steps",
            "batch_size",
            "outer_lr",
            "inner_lr",
            "warm_start",
            "preprocessing",
            "n_components",
            "precision",
            "device",
            "init",
            "cuda_graph",
            "num_threads",
            "random_state",
            "progress",
            "cancel",
        ]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params: Any) -> Turtle:
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"Turtle has no parameter {name!r}")
            setattr(self, name, value)
        return self

    def _validate(self, n_rows: int) -> None:
        if not 2 <= int(self.n_clusters) <= n_rows:
            raise ValueError(
                f"n_clusters must be between 2 and the number of images ({n_rows}), got {self.n_clusters}"
            )
        if self.gamma < 0:
            raise ValueError("gamma must be non-negative")
        if self.outer_steps < 0 or self.inner_steps < 1 or self.batch_size < 1:
            raise ValueError("outer_steps must be ≥ 0, inner_steps and batch_size ≥ 1")
        if self.outer_lr <= 0 or self.inner_lr <= 0:
            raise ValueError("learning rates must be positive")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.precision not in ("tf32", "fp32", "bf16", "auto"):
            raise ValueError(f"precision must be 'tf32', 'fp32', 'bf16' or 'auto', got {self.precision!r}")

    def fit(self, spaces: Sequence[np.ndarray | torch.Tensor]) -> Turtle:
        """Learn the task heads on K feature spaces (each N × d_k) and label the N rows."""
        started = time.perf_counter()
        arrays = check_spaces(spaces)
        self._validate(arrays[0].shape[0])
        self._drawn_seed = None  # without a random_state every fit draws afresh
        check_cancel(self.cancel)
        device = resolve_device(self.device)
        with cpu_threads(self.num_threads, device):
            preprocessors = [
                SpacePreprocessor(
                    self.preprocessing, effective_components(self.n_components, len(X), int(self.n_clusters))
                ).fit(X, device)
                for X in arrays
            ]
            features = [p.transform(X, device) for p, X in zip(preprocessors, arrays, strict=True)]
            self._fit_prepared(
                features, preprocessors, [int(X.shape[1]) for X in arrays], self.initial_labels(arrays)
            )
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def initial_labels(self, spaces: Sequence[np.ndarray]) -> np.ndarray | None:
        """The clusters the heads start from (k-means inits, see `kmeans_init_labels`); None for random."""
        if self.init == "random":
            return None
        return kmeans_init_labels(
            spaces,
            int(self.n_clusters),
            self._seed(),
            cosine=self.init == "kmeans_cosine",
            device=resolve_device(self.device),
        )

    def _seed(self) -> int:
        """`random_state`, or a seed drawn once per fit and shared by the k-means start and the loop."""
        if self.random_state is not None:
            return int(self.random_state)
        if getattr(self, "_drawn_seed", None) is None:
            self._drawn_seed = int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> 1)
        return self._drawn_seed

    def _fit_prepared(
        self,
        features: list[np.ndarray],
        preprocessors: list[SpacePreprocessor],
        n_features_in: list[int],
        init_labels: np.ndarray | None,
    ) -> Turtle:
        """`fit` on already preprocessed features (lets model selection preprocess once for all runs);
        `init_labels` are `initial_labels` of the input spaces (required with the k-means inits)."""
        started = time.perf_counter()
        self._validate(features[0].shape[0])
        self.n_features_in_ = list(n_features_in)
        self.preprocessors_ = list(preprocessors)
        device = resolve_device(self.device)
        precision = self.precision
        if precision == "auto":
            precision = "bf16" if device.type == "cuda" else "fp32"
        tf32 = precision == "tf32"
        if tf32:
            precision = "fp32"
        if self.init != "random" and init_labels is None:
            raise ValueError(
                f"init={self.init!r} needs the initial labels of the input spaces (initial_labels)"
            )
        seed = self._seed()
        with torch.no_grad(), cpu_threads(self.num_threads, device):
            engine = TurtleEngine(
                features,
                n_clusters=int(self.n_clusters),
                gamma=self.gamma,
                inner_steps=self.inner_steps,
                batch_size=self.batch_size,
                outer_lr=self.outer_lr,
                inner_lr=self.inner_lr,
                warm_start=self.warm_start,
                precision=precision,
                device=device,
                seed=seed,
            )
            if init_labels is not None:
                engine.init_heads_from_centroids(cluster_means(features, init_labels, int(self.n_clusters)))
            with tf32_matmuls(device) if tf32 else contextlib.nullcontext():
                self.history_ = self._train(engine)
            self.head_weights_, self.head_biases_ = engine.head_parameters()
        del engine
        self.device_ = device
        self.probabilities_ = head_probabilities(features, self.head_weights_, self.head_biases_, device)
        self.labels_ = self.probabilities_.argmax(1).astype(np.int64)
        self.confidence_ = self.probabilities_.max(1)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def _train(self, engine: TurtleEngine) -> list[dict[str, float]]:
        total = int(self.outer_steps)
        meter = ProgressMeter("turtle", total, self.progress)
        meter.report(force=True)
        graph = None
        if self.cuda_graph and engine.device.type == "cuda" and total >= 4 * GRAPH_STEPS:
            try:
                graph = engine.capture_graph(GRAPH_STEPS)
            except Exception as error:  # capture is an optimisation: any failure means eager execution
                graph = None
                warnings.warn(
                    f"CUDA graph capture failed ({error}); running eagerly", RuntimeWarning, stacklevel=2
                )
        chunk = GRAPH_STEPS if graph is not None else CHECK_EVERY
        logged: list[tuple[int, torch.Tensor]] = []
        done = 0
        while done < total:
            steps = min(chunk, total - done)
            engine.prepare_chunk(steps)
            if graph is not None and steps == GRAPH_STEPS:
                graph.replay()
            else:
                engine.run_chunk(steps)
            done += steps
            if done % LOG_EVERY == 0 or done == total:
                logged.append((done, engine.loss.clone()))
            if done % CHECK_EVERY == 0 or done == total:
                check_cancel(self.cancel)
                meter.advance(done - meter.done)
        self.n_iter_ = done
        if not logged:
            return []
        values = torch.stack([loss for _, loss in logged]).cpu().numpy()
        return [
            {"step": step, "loss": float(v[0]), "cross_entropy": float(v[1]), "entropy": float(v[2])}
            for (step, _), v in zip(logged, values, strict=True)
        ]

    def _check_fitted(self) -> None:
        if not hasattr(self, "head_weights_"):
            raise RuntimeError("this Turtle is not fitted yet; call fit() first")

    def predict_proba(self, spaces: Sequence[np.ndarray | torch.Tensor]) -> np.ndarray:
        """Soft labels τ(x) (N × C, rows sum to 1) for new rows in the same K spaces."""
        self._check_fitted()
        arrays = check_spaces(spaces)
        if [X.shape[1] for X in arrays] != self.n_features_in_:
            raise ValueError(
                f"expected spaces with {self.n_features_in_} dimensions, got {[X.shape[1] for X in arrays]}"
            )
        device = resolve_device(self.device)
        features = [p.transform(X, device) for p, X in zip(self.preprocessors_, arrays, strict=True)]
        return head_probabilities(features, self.head_weights_, self.head_biases_, device)

    def predict(self, spaces: Sequence[np.ndarray | torch.Tensor]) -> np.ndarray:
        """Cluster index per row (argmax of `predict_proba`)."""
        return self.predict_proba(spaces).argmax(1).astype(np.int64)
