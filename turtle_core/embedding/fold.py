"""Batch norms folded into the convolutions before them, for inference.

A convolution followed by an inference-mode batch norm is one affine map: the norm's scale goes into the
convolution's weights, its shift into a bias. EfficientNet-Lite's 49 norms are a third of its CPU time
(benchmarks/embed_throughput.py: 1.5x the images/s), and the features stay the same to float rounding.
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn

# Features of the folded and the original model may differ by float rounding alone (~1e-5 on features
# of magnitude ~5); anything larger means a pair was not what it looked like, and nothing is folded.
FOLD_TOLERANCE = 1e-3


class _AfterNorm(nn.Module):
    """What a folded norm still does: timm's BatchNormAct2d applies dropout and an activation after it."""

    def __init__(self, norm: nn.BatchNorm2d) -> None:
        super().__init__()
        self.drop = getattr(norm, "drop", nn.Identity())
        self.act = getattr(norm, "act", nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(x))


def _adjacent_pairs(model: nn.Module) -> list[tuple[nn.Module, str, str]]:
    """(parent, convolution's name, norm's name) for each convolution registered right before a batch norm
    of as many channels (timm's blocks register them in the order they run; `fold_batch_norms` checks it)."""
    pairs = []
    for parent in model.modules():
        children = list(parent.named_children())
        for (conv_name, conv), (norm_name, norm) in itertools.pairwise(children):
            if (
                isinstance(conv, nn.Conv2d)
                and isinstance(norm, nn.BatchNorm2d)
                and norm.track_running_stats
                and norm.running_var is not None
                and norm.num_features == conv.out_channels
            ):
                pairs.append((parent, conv_name, norm_name))
    return pairs


@torch.no_grad()
def _fold_pair(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    scale = norm.running_var.add(norm.eps).rsqrt()
    if norm.weight is not None:
        scale = scale * norm.weight
    shift = -norm.running_mean * scale
    if norm.bias is not None:
        shift = shift + norm.bias
    if conv.bias is not None:
        shift = shift + conv.bias * scale
    conv.weight.mul_(scale.reshape(-1, 1, 1, 1).to(conv.weight.dtype))
    conv.bias = nn.Parameter(shift.to(conv.weight.dtype))


@torch.no_grad()
def fold_batch_norms(model: nn.Module, input_size: int) -> tuple[nn.Module, int]:
    """A copy of `model` (in eval mode) with its batch norms folded into the convolutions before them,
    and how many were folded; `model` itself when there is nothing to fold or when the folded copy's
    output on a random batch of `input_size` images differs from the original's."""
    model = model.eval()
    if not _adjacent_pairs(model):
        return model, 0
    folded = copy.deepcopy(model)
    pairs = _adjacent_pairs(folded)
    for parent, conv_name, norm_name in pairs:
        norm = getattr(parent, norm_name)
        _fold_pair(getattr(parent, conv_name), norm)
        setattr(parent, norm_name, _AfterNorm(norm))
    parameter = next(model.parameters())
    probe = torch.randn(
        2, 3, input_size, input_size, generator=torch.Generator().manual_seed(0), dtype=parameter.dtype
    ).to(parameter.device)
    expected, got = model(probe), folded(probe)
    if not torch.allclose(
        got, expected, rtol=FOLD_TOLERANCE, atol=FOLD_TOLERANCE * float(expected.abs().max())
    ):
        return model, 0
    return folded, len(pairs)
