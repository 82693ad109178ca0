"""The curator-effort benchmark suite: data-set builder, feature extraction, simulated curator, harness parts."""
