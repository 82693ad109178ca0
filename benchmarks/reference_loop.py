"""A reference-style TURTLE loop: the straightforward way to write the paper's algorithm.

Written from the paper's description (not from its code) as the baseline for speed and accuracy:
numpy draws each batch on the host, every batch is copied host → device, autograd computes every
gradient, the task heads use `torch.nn.utils.parametrizations.weight_norm`, and with cold start a
fresh inner `nn.Linear` and a fresh `torch.optim.Adam` are built at every outer step. fp32 throughout.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm


def reference_turtle(
    spaces: Sequence[np.ndarray],
    n_clusters: int,
    *,
    gamma: float = 10.0,
    outer_steps: int = 6000,
    inner_steps: int = 10,
    batch_size: int = 10_000,
    outer_lr: float = 1e-3,
    inner_lr: float = 1e-3,
    warm_start: bool = False,
    device: str = "cpu",
    seed: int = 0,
) -> dict[str, Any]:
    """Run the reference-style loop; returns labels, probabilities, seconds and seconds per outer step."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    spaces = [np.asarray(X, dtype=np.float32) for X in spaces]
    n = spaces[0].shape[0]
    batch = min(batch_size, n)
    heads = [weight_norm(nn.Linear(X.shape[1], n_clusters)).to(device) for X in spaces]
    outer_opt = torch.optim.Adam([p for head in heads for p in head.parameters()], lr=outer_lr)

    def new_inner() -> tuple[list[nn.Linear], torch.optim.Optimizer]:
        layers = [nn.Linear(X.shape[1], n_clusters).to(device) for X in spaces]
        return layers, torch.optim.Adam([p for layer in layers for p in layer.parameters()], lr=inner_lr)

    inner, inner_opt = new_inner()
    started = time.perf_counter()
    for _ in range(outer_steps):
        idx = rng.choice(n, size=batch, replace=False)
        xs = [torch.from_numpy(X[idx]).to(device) for X in spaces]
        probs = [F.softmax(head(x), dim=1) for head, x in zip(heads, xs, strict=True)]
        tau = torch.stack(probs).mean(0)
        if not warm_start:
            inner, inner_opt = new_inner()
        target = tau.detach()
        for _ in range(inner_steps):
            inner_opt.zero_grad()
            loss = sum(F.cross_entropy(layer(x), target) for layer, x in zip(inner, xs, strict=True))
            loss.backward()
            inner_opt.step()
        with torch.no_grad():
            log_q = [F.log_softmax(layer(x), dim=1) for layer, x in zip(inner, xs, strict=True)]
        cross_entropy = sum(-(tau * lq).sum(1).mean() for lq in log_q)
        entropy = 0.0
        for p in probs:
            mean_p = p.mean(0)
            entropy = entropy - (mean_p * torch.log(mean_p)).sum()
        outer_loss = cross_entropy - gamma * entropy
        outer_opt.zero_grad()
        outer_loss.backward()
        outer_opt.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    with torch.no_grad():
        total = None
        for head, X in zip(heads, spaces, strict=True):
            p = F.softmax(head(torch.from_numpy(X).to(device)), dim=1).cpu()
            total = p if total is None else total + p
        probabilities = (total / len(spaces)).numpy()
    return {
        "labels": probabilities.argmax(1),
        "probabilities": probabilities,
        "seconds": seconds,
        "seconds_per_step": seconds / max(outer_steps, 1),
        "outer_steps": outer_steps,
    }
