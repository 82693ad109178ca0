"""TURTLE's training loop on the device (the paper's first-order alternating scheme) and the head read-out
(`discovery/starts.py` holds the k-means starts). `Turtle` (discovery/turtle.py) is the estimator that
drives it.

The whole loop runs without host round trips: features stay resident as one tensor per space,
batches are drawn on the device, gradients are written by hand and both levels use a fused Adam
update on one flat parameter tensor each.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from turtle_core.discovery.runtime import cpu_threads, default_cpu_threads, map_rows, resolve_device  # noqa: F401

LOG_EVERY = 100  # outer steps between logged losses (each log is a device-side copy, no sync)

CHECK_EVERY = 50  # outer steps between cancel checks / progress reports

GRAPH_STEPS = 10  # outer steps captured in one CUDA graph

# PyTorch supports one graph capture at a time per process; fits in other threads wait for this lock
# only while capturing (a few ms), and their eager work and replays run freely meanwhile because the
# capture uses a thread-local capture mode and its own stream.
_CAPTURE_LOCK = threading.Lock()

_BETAS = (0.9, 0.999)

_ADAM_EPS = 1e-8


def _fused_adam_available() -> bool:
    return hasattr(torch, "_fused_adam_")


class _FlatAdam:
    """Adam on a single flat tensor; the step counter lives on the device so CUDA graphs can replay it."""

    def __init__(self, param: torch.Tensor, lr: float) -> None:
        self.param = param
        self.grad = torch.zeros_like(param)
        self.exp_avg = torch.zeros_like(param)
        self.exp_avg_sq = torch.zeros_like(param)
        self.step = torch.zeros((), dtype=torch.float32, device=param.device)
        self.lr = float(lr)
        self.fused = _fused_adam_available()

    def reset(self) -> None:
        self.exp_avg.zero_()
        self.exp_avg_sq.zero_()
        self.step.zero_()

    def update(self) -> None:
        self.step.add_(1)
        beta1, beta2 = _BETAS
        if self.fused:
            torch._fused_adam_(
                [self.param],
                [self.grad],
                [self.exp_avg],
                [self.exp_avg_sq],
                [],
                [self.step],
                lr=self.lr,
                beta1=beta1,
                beta2=beta2,
                weight_decay=0.0,
                eps=_ADAM_EPS,
                amsgrad=False,
                maximize=False,
            )
            return
        self.exp_avg.lerp_(self.grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(self.grad, self.grad, value=1 - beta2)
        bias1 = 1 - torch.pow(beta1, self.step)
        bias2 = 1 - torch.pow(beta2, self.step)
        denom = (self.exp_avg_sq / bias2).sqrt_().add_(_ADAM_EPS)
        self.param.addcdiv_(self.exp_avg / bias1, denom, value=-self.lr)

    def tensors(self) -> list[torch.Tensor]:
        return [self.param, self.exp_avg, self.exp_avg_sq, self.step]


def _padded(d: int) -> int:
    # Room for the constant-1 bias feature, rounded up so rows stay aligned for the matmul kernels.
    return (d + 1 + 15) // 16 * 16


class TurtleEngine:
    """Device-resident state and the hand-written TURTLE step.

    Layout: everything is "classes × batch" (C × B). Each space's features carry an extra constant-1
    feature so that biases are ordinary weights. They are stored N × d, so that drawing a batch is a
    row gather, except on the CPU when every step takes the whole folder: there they are stored
    transposed (d × N), the fast layout for both matmuls of a step.
    """

    def __init__(
        self,
        spaces: Sequence[np.ndarray],
        n_clusters: int,
        gamma: float,
        inner_steps: int,
        batch_size: int,
        outer_lr: float,
        inner_lr: float,
        warm_start: bool,
        precision: Literal["fp32", "bf16"],
        device: torch.device,
        seed: int,
        rows_major: bool | None = None,
    ) -> None:
        self.device = device
        self.K = len(spaces)
        self.C = int(n_clusters)
        self.N = int(spaces[0].shape[0])
        self.B = min(int(batch_size), self.N)
        self.full_batch = self.B == self.N
        self.gamma = float(gamma)
        self.M = int(inner_steps)
        self.warm_start = bool(warm_start)
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        # Drawing a batch gathers rows: on the CPU too that is twice as fast from N × d as columns from
        # d × N, and the step's matmuls read the gathered rows as fast (10,000 rows, batches of 4,096:
        # 6.3 against 8.6 ms a step); a whole-folder batch needs no gather, and d × N is faster there.
        if rows_major is None:
            rows_major = device.type != "cpu" or not self.full_batch
        self.rows_major = rows_major
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(int(seed))
        self.dims = [int(X.shape[1]) for X in spaces]
        self.pads = [_padded(d) for d in self.dims]
        C = self.C

        self.data: list[torch.Tensor] = []
        for X, d, dp in zip(spaces, self.dims, self.pads, strict=True):
            aug = torch.zeros(self.N, dp, dtype=torch.float32)
            aug[:, :d] = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
            aug[:, d] = 1.0
            stored = aug if self.rows_major else aug.T.contiguous()
            self.data.append(stored.to(device=device, dtype=self.dtype))
            del aug, stored

        # Task heads θ_k, stored per space as C × (d + 2) = [direction v | bias | gain g].
        self.theta = torch.empty(sum(C * (d + 2) for d in self.dims), device=device)
        self.theta_k = self._views(self.theta, [d + 2 for d in self.dims])
        self.theta_opt = _FlatAdam(self.theta, outer_lr)
        self.theta_grad_k = self._views(self.theta_opt.grad, [d + 2 for d in self.dims])
        for th, d in zip(self.theta_k, self.dims, strict=True):
            bound = 1.0 / math.sqrt(d)
            th[:, : d + 1].uniform_(-bound, bound, generator=self.generator)
            th[:, d + 1] = torch.linalg.vector_norm(th[:, :d], dim=1)
        self.head_k = [torch.zeros(C, dp, device=device) for dp in self.pads]

        # Inner linear classifiers w_k (C × padded d, last real column = bias), default nn.Linear init.
        self.inner = torch.zeros(sum(C * dp for dp in self.pads), device=device)
        self.inner_k = self._views(self.inner, self.pads)
        self.inner_opt = _FlatAdam(self.inner, inner_lr)
        self.inner_grad_k = self._views(self.inner_opt.grad, self.pads)
        self.init_bound = torch.zeros_like(self.inner)
        for view, d in zip(self._views(self.init_bound, self.pads), self.dims, strict=True):
            view[:, : d + 1] = 1.0 / math.sqrt(d)
        self.inner.uniform_(-1.0, 1.0, generator=self.generator).mul_(self.init_bound)

        self.loss = torch.zeros(3, device=device)  # total, cross-entropy, entropy sum
        self.chunk = 0
        self.idx_buf: torch.Tensor | None = None
        self.noise_buf: torch.Tensor | None = None
        self.batch_buf: list[torch.Tensor] = []
        self._perm: torch.Tensor | None = None
        self._perm_pos = 0

    def _views(self, flat: torch.Tensor, widths: Sequence[int]) -> list[torch.Tensor]:
        views, start = [], 0
        for width in widths:
            size = self.C * width
            views.append(flat[start : start + size].view(self.C, width))
            start += size
        return views

    # ------------------------------------------------------------------ randomness (outside the step)
    def prepare_chunk(self, steps: int) -> None:
        """Draw the batch indices and cold-start initialisations of the next `steps` outer steps."""
        if self.chunk != steps:
            self.chunk = steps
            self.noise_buf = (
                None if self.warm_start else torch.empty(steps, self.inner.numel(), device=self.device)
            )
            self.idx_buf = (
                None if self.full_batch else torch.empty(steps, self.B, dtype=torch.long, device=self.device)
            )
            if not self.full_batch:
                shapes = [(self.B, dp) if self.rows_major else (dp, self.B) for dp in self.pads]
                self.batch_buf = [
                    torch.empty(shape, dtype=self.dtype, device=self.device) for shape in shapes
                ]
        if self.noise_buf is not None:
            self.noise_buf.uniform_(-1.0, 1.0, generator=self.generator)
        if self.idx_buf is not None:
            for s in range(steps):
                if self._perm is None or self._perm_pos + self.B > self.N:
                    self._perm = torch.randperm(self.N, generator=self.generator, device=self.device)
                    self._perm_pos = 0
                self.idx_buf[s].copy_(self._perm[self._perm_pos : self._perm_pos + self.B])
                self._perm_pos += self.B

    # ------------------------------------------------------------------ the step
    def _batch(self, k: int, s: int) -> torch.Tensor:
        """Features of the current batch as (padded d) × B (a transposed view on CUDA)."""
        data = self.data[k]
        if self.full_batch:
            return data.T if self.rows_major else data
        assert self.idx_buf is not None
        out = self.batch_buf[k]
        torch.index_select(data, 0 if self.rows_major else 1, self.idx_buf[s], out=out)
        return out.T if self.rows_major else out

    def _logits(self, weight: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        if self.dtype == torch.float32:
            return torch.mm(weight, X)
        return torch.mm(weight.to(self.dtype), X)

    def _grad_into(self, out: torch.Tensor, G: torch.Tensor, X: torch.Tensor) -> None:
        if self.dtype == torch.float32:
            torch.mm(G, X.T, out=out)
        else:
            out.copy_(torch.mm(G.to(self.dtype), X.T))

    def step(self, s: int, record: bool) -> None:
        """One outer iteration (step `s` of the prepared chunk)."""
        K, B, gamma = self.K, self.B, self.gamma
        X = [self._batch(k, s) for k in range(self.K)]

        # Task encoder: weight-normalised heads, soft labels τ = mean_k softmax(θ_k φ_k).
        norms, probs = [], []
        for k, (th, head, d) in enumerate(zip(self.theta_k, self.head_k, self.dims, strict=True)):
            norm = torch.linalg.vector_norm(th[:, :d], dim=1, keepdim=True)
            head[:, : d + 1].copy_(th[:, : d + 1])
            head[:, :d].mul_(th[:, d + 1 :] / norm)
            norms.append(norm)
            probs.append(torch.softmax(self._logits(head, X[k]), 0, dtype=torch.float32))
        tau = probs[0] if K == 1 else torch.stack(probs).mean(0)

        # Inner loop: M Adam steps of the linear classifiers on CE(w_k φ_k, stopgrad τ).
        if not self.warm_start:
            assert self.noise_buf is not None
            torch.mul(self.noise_buf[s], self.init_bound, out=self.inner)
            self.inner_opt.reset()
        for _ in range(self.M):
            for k in range(K):
                G = torch.softmax(self._logits(self.inner_k[k], X[k]), 0, dtype=torch.float32)
                G.sub_(tau).mul_(1.0 / B)
                self._grad_into(self.inner_grad_k[k], G, X[k])
            self.inner_opt.update()

        # Outer step: Σ_k CE(stopgrad(w_k φ_k), τ) − γ Σ_k H(mean_batch softmax(θ_k φ_k)), gradients by hand.
        log_q = [
            torch.log_softmax(self._logits(self.inner_k[k], X[k]), 0, dtype=torch.float32) for k in range(K)
        ]
        log_q_sum = log_q[0] if K == 1 else torch.stack(log_q).sum(0)
        d_tau = log_q_sum * (-1.0 / (B * K))  # ∂CE/∂p_k, the same for every head
        entropies = []
        for k, (th, grad, d) in enumerate(zip(self.theta_k, self.theta_grad_k, self.dims, strict=True)):
            P = probs[k]
            mean_p = P.mean(1, keepdim=True)
            log_mean = torch.log(mean_p)
            if record:
                entropies.append(-(mean_p * log_mean).sum())
            d_p = d_tau + (gamma / B) * log_mean  # the entropy term's +1 cancels in the softmax backward
            PG = P * d_p
            dZ = PG.sub_(P * PG.sum(0, keepdim=True))
            head_grad = torch.mm(dZ.to(self.dtype), X[k].T)
            if head_grad.dtype != torch.float32:
                head_grad = head_grad.float()
            # Weight-norm backward: W = g v/‖v‖.
            g_w = head_grad[:, :d]
            direction = th[:, :d] / norms[k]
            g_gain = (g_w * direction).sum(1, keepdim=True)
            torch.mul(g_w.sub(g_gain * direction), th[:, d + 1 :] / norms[k], out=grad[:, :d])
            grad[:, d : d + 1].copy_(head_grad[:, d : d + 1])
            grad[:, d + 1 :].copy_(g_gain)
        if record:
            ce = -(tau * log_q_sum).sum() / B
            entropy = torch.stack(entropies).sum()
            torch.stack([ce - gamma * entropy, ce, entropy], out=self.loss)
        self.theta_opt.update()

    # ------------------------------------------------------------------ state, graphs, results
    def state_tensors(self) -> list[torch.Tensor]:
        return [*self.theta_opt.tensors(), *self.inner_opt.tensors(), self.loss]

    def snapshot(self) -> list[torch.Tensor]:
        return [t.clone() for t in self.state_tensors()]

    def restore(self, saved: list[torch.Tensor]) -> None:
        for target, value in zip(self.state_tensors(), saved, strict=True):
            target.copy_(value)

    def run_chunk(self, steps: int) -> None:
        for s in range(steps):
            self.step(s, record=s == steps - 1)

    def capture_graph(self, steps: int) -> torch.cuda.CUDAGraph | None:
        """Capture `steps` outer steps in a CUDA graph and check one replay against eager execution;
        None (with a warning saying why) when the replay does not match."""
        self.prepare_chunk(steps)
        saved = self.snapshot()
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            self.run_chunk(steps)  # warm-up: lazy cuBLAS/allocator initialisation happens outside capture
        torch.cuda.current_stream(self.device).wait_stream(side)
        self.restore(saved)
        graph = torch.cuda.CUDAGraph()
        # "thread_local": only this thread's unsafe calls are refused during the capture. The default
        # ("global") makes any other thread's allocation or sync fail while we capture (e.g. a second
        # fit, or an embedding job, running at the same time).
        capture_stream = torch.cuda.Stream(device=self.device)
        capture_stream.wait_stream(torch.cuda.current_stream(self.device))
        with _CAPTURE_LOCK, torch.cuda.graph(graph, stream=capture_stream, capture_error_mode="thread_local"):
            self.run_chunk(steps)
        torch.cuda.current_stream(self.device).wait_stream(capture_stream)
        self.restore(saved)
        graph.replay()
        replayed = self.snapshot()
        self.restore(saved)
        self.run_chunk(steps)
        eager = self.snapshot()
        self.restore(saved)
        for a, b in zip(replayed, eager, strict=True):
            scale = float(b.abs().max()) + 1e-6
            gap = float((a - b).abs().max())
            if not torch.isfinite(a).all() or gap > 1e-3 * scale:
                warnings.warn(
                    f"CUDA graph self-check failed (replay differs from eager execution by {gap:.3g}, "
                    f"scale {scale:.3g}); running eagerly",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return None
        return graph

    def init_heads_from_centroids(self, centroids: Sequence[np.ndarray], sharpness: float = 2.0) -> None:
        """Start each head at the nearest-centroid rule of `centroids[k]` (C × d_k): logits
        s·(x·μ_c − ‖μ_c‖²/2), with s set so that logits spread by about `sharpness` per row."""
        for th, d, mu, X in zip(self.theta_k, self.dims, centroids, self.data, strict=True):
            mu_t = torch.as_tensor(np.asarray(mu, dtype=np.float32), device=self.device)
            feats = (X.T if self.rows_major else X)[:d].float()  # d × N
            logits = mu_t @ feats - 0.5 * mu_t.square().sum(1, keepdim=True)
            scale = sharpness / float(logits.std(0).mean().clamp_min(1e-6))
            norm = torch.linalg.vector_norm(mu_t, dim=1).clamp_min(1e-6)
            th[:, :d].copy_(mu_t)
            th[:, d].copy_(-0.5 * scale * mu_t.square().sum(1))
            th[:, d + 1].copy_(scale * norm)

    def head_parameters(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Effective head weights (C × d) and biases (C) per space, on the host."""
        weights, biases = [], []
        for th, d in zip(self.theta_k, self.dims, strict=True):
            th = th.detach().float().cpu()
            norm = torch.linalg.vector_norm(th[:, :d], dim=1, keepdim=True)
            weights.append((th[:, :d] * th[:, d + 1 :] / norm).numpy().copy())
            biases.append(th[:, d].numpy().copy())
        return weights, biases


def head_probabilities(
    spaces: Sequence[np.ndarray],
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    device: torch.device | None = None,
) -> np.ndarray:
    """τ(x) = mean_k softmax(W_k x + b_k) for preprocessed features, as an N × C float32 array; on a
    CUDA `device` computed there, a chunk of rows at a time."""
    if device is not None and device.type == "cuda":
        return _head_probabilities_on(spaces, weights, biases, device)
    total = None
    for X, W, b in zip(spaces, weights, biases, strict=True):
        logits = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)) @ torch.from_numpy(W).T
        p = torch.softmax(logits + torch.from_numpy(b), dim=1)
        total = p if total is None else total + p
    assert total is not None
    return (total / len(spaces)).numpy().astype(np.float32)


def _head_probabilities_on(
    spaces: Sequence[np.ndarray],
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    device: torch.device,
) -> np.ndarray:
    heads = [
        (torch.from_numpy(W).to(device), torch.from_numpy(b).to(device))
        for W, b in zip(weights, biases, strict=True)
    ]

    def soft_labels(blocks: list[torch.Tensor]) -> torch.Tensor:
        total = sum(torch.softmax(X @ W.T + b, dim=1) for X, (W, b) in zip(blocks, heads, strict=True))
        return (total / len(heads)).float()

    return map_rows(spaces, soft_labels, device)
