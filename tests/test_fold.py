"""Batch norms folded into convolutions: the same outputs, and nothing folded where the order is not what
it looks like."""

from __future__ import annotations

import timm
import torch
from torch import nn

from turtle_core.embedding.fold import fold_batch_norms


def _trained_norms(model: nn.Module) -> nn.Module:
    """`model` with batch-norm statistics and affine parameters that are not their defaults."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            count = module.num_features
            module.running_mean.copy_(torch.randn(count, generator=generator) * 0.3)
            module.running_var.copy_(torch.rand(count, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(count, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(count, generator=generator) * 0.1)
    return model.eval()


def test_random_lite0_folds_every_norm_and_keeps_its_features() -> None:
    model = _trained_norms(timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0))
    folded, count = fold_batch_norms(model, 64)
    assert count == 49 and folded is not model
    assert not any(isinstance(module, nn.BatchNorm2d) for module in folded.modules())
    batch = torch.randn(3, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = model(batch), folded(batch)
    assert torch.allclose(got, expected, atol=1e-4 * float(expected.abs().max()))
    assert any(isinstance(module, nn.BatchNorm2d) for module in model.modules())  # the original is intact


class _NormFirst(nn.Module):
    """A convolution registered before a norm of as many channels, but run after it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.norm = nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.norm(x))


def test_a_pair_that_does_not_run_in_order_is_not_folded() -> None:
    model = _trained_norms(_NormFirst())
    folded, count = fold_batch_norms(model, 16)
    assert count == 0 and folded is model
    assert isinstance(model.norm, nn.BatchNorm2d)


def test_a_model_without_norms_is_returned_as_it_is() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    folded, count = fold_batch_norms(model, 8)
    assert count == 0 and folded is model
