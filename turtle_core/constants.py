"""Constants shared across the engine."""

from __future__ import annotations

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".dib", ".tif", ".tiff", ".gif"}
)

# Pillow's decompression-bomb guard: images with more pixels than this are refused with a reason.
MAX_IMAGE_PIXELS: int = 178_956_970

# TURTLE defaults from the paper (Gadetsky et al., ICML 2024).
TURTLE_OUTER_STEPS: int = 6000
TURTLE_INNER_STEPS: int = 10
TURTLE_BATCH_SIZE: int = 10_000
TURTLE_GAMMA: float = 10.0

THUMBNAIL_SIZE: int = 192
EXCLUDED: int = -1  # cluster id of images a curator excluded

# "Fits no category": an image whose atypicality (discovery/confidence.py) exceeds this robust z-score.
ATYPICAL_Z: float = 3.5

# The stability choice between TURTLE's and k-means' partitions (discovery/stability.py): k-means runs
# compared, k-means++ starts per run, and the rows k-means is fitted on beyond which it uses a sample.
PARTITIONS: tuple[str, ...] = ("auto", "turtle", "kmeans")  # auto: the stability choice; else forced
STABILITY_TURTLE_RUNS: int = 3  # independent quick TURTLE selections compared
STABILITY_KMEANS_RUNS: int = 3
STABILITY_KMEANS_INITS: int = 10
STABILITY_KMEANS_SAMPLE_ROWS: int = 20_000

# Rows a TURTLE step, a label-free score's probes and a TURTLE k-means start work on at most: a random
# batch, and fixed random samples, above it (the whole folder below). The paper's 10,000-row batches cost
# 2.3x as much per step on the CPU for the same labels (benchmarks/README.md, "The schedule fits the folder").
DISCOVERY_WORK_ROWS: int = 4096
PROBE_MAX_ROWS: int = DISCOVERY_WORK_ROWS
# Above this many images discovery is fitted on a random sample of this size (discovery/sampled.py; TURTLE
# works on 4,096-row batches and samples anyway, so a 50,000-row sample loses little: at 100,000 mixture
# rows the sampled discovery still reaches accuracy 1.0).
DISCOVERY_SAMPLE_ROWS: int = 50_000
