"""Speed and quality benchmarks of TURTLE Labels: `python -m benchmarks` lists them, `python -m benchmarks
NAME [args...]` runs one (from the repository's root). Results land in `benchmarks/results/*.json`."""
