"""How a discovery's choices read to a person (no heavy imports: the pages and the CLI use it)."""

from __future__ import annotations


def partition_note(params: dict) -> str:
    """Which partition the discovery kept, TURTLE's or k-means', and why (empty for older results)."""
    method = params.get("method")
    if method not in ("turtle", "kmeans"):
        return ""
    if params.get("partition") in ("turtle", "kmeans"):
        return f"Partition: {'TURTLE' + chr(39) + 's' if method == 'turtle' else 'k-means' + chr(39)}, as you asked."
    turtle, kmeans = params.get("turtle_agreement"), params.get("kmeans_agreement")
    if not isinstance(turtle, (int, float)) or not isinstance(kmeans, (int, float)):
        return "Partition: TURTLE's."
    why = f"(runs agree {max(turtle, kmeans):.2f} against {min(turtle, kmeans):.2f})"
    if method == "kmeans":
        return f"Partition: k-means', which was more stable than TURTLE's on this folder {why}."
    return f"Partition: TURTLE's, which was more stable than k-means' on this folder {why}."
