"""The networks maas trains, built from a resolved :class:`ArchitectureSpec`, and their JSON description.

Every network takes the dataset's raw feature tensor ``[N, *input_shape]`` (already standardised) and returns
``[N, n_outputs]`` logits or values. Image networks reshape flat rows (digits stores 8x8 images as 64 columns)
to ``image_shape`` themselves. The JSON document holds everything needed to rebuild the exact module, so stored
weights load into it as plain safetensors, with no pickle.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from maas.errors import InvalidModel
from maas.training.spec import ArchitectureSpec

DOCUMENT_FORMAT = "maas.architecture/v1"

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


def build_network(arch: ArchitectureSpec, input_shape: list[int], n_outputs: int,
                  image_shape: list[int] | None) -> nn.Module:
    """The untrained network for a resolved ``arch`` (no ``auto``, per-type defaults filled)."""
    if arch.type == "linear":
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), n_outputs))
    if arch.type == "mlp":
        return nn.Sequential(nn.Flatten(), _dense_stack(arch, math.prod(input_shape), arch.hidden or [], n_outputs))
    if arch.type in ("cnn", "resnet") and image_shape:
        body, width = (_conv_body if arch.type == "cnn" else _residual_body)(arch, image_shape)
        head = _dense_stack(arch.model_copy(update={"batch_norm": False}), width, arch.fc or [], n_outputs)
        return nn.Sequential(ToImage(image_shape), body, nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
    raise InvalidModel(f"Cannot build a {arch.type!r} network for input shape {input_shape}.")


class ToImage(nn.Module):
    """Reshape flat rows to ``[N, C, H, W]``; keeps the batch axis dynamic for ONNX export."""

    def __init__(self, image_shape: list[int]) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1, *self.image_shape)


def _dense_stack(arch: ArchitectureSpec, width: int, hidden: list[int], n_outputs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers.append(nn.Linear(width, h))
        if arch.batch_norm:
            layers.append(nn.BatchNorm1d(h))
        layers.append(_ACTIVATIONS[arch.activation]())
        if arch.dropout:
            layers.append(nn.Dropout(arch.dropout))
        width = h
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


def _conv_body(arch: ArchitectureSpec, image_shape: list[int]) -> tuple[nn.Sequential, int]:
    width, size = image_shape[0], min(image_shape[1:])
    layers: list[nn.Module] = []
    for c in arch.channels or []:
        k = arch.kernel_size or 3
        layers.append(nn.Conv2d(width, c, k, padding=k // 2, bias=not arch.batch_norm))
        if arch.batch_norm:
            layers.append(nn.BatchNorm2d(c))
        layers.append(_ACTIVATIONS[arch.activation]())
        if size >= 2:  # stop downsampling once the feature map is a single pixel, so small images work
            layers.append(nn.MaxPool2d(2) if arch.pooling == "max" else nn.AvgPool2d(2))
            size //= 2
        width = c
    return nn.Sequential(*layers), width


def _residual_body(arch: ArchitectureSpec, image_shape: list[int]) -> tuple[nn.Sequential, int]:
    channels, k = arch.channels or [], arch.kernel_size or 3
    stem = [nn.Conv2d(image_shape[0], channels[0], k, padding=k // 2, bias=False), nn.BatchNorm2d(channels[0]),
            _ACTIVATIONS[arch.activation]()]
    blocks: list[nn.Module] = []
    width, size = channels[0], min(image_shape[1:])
    for stage, c in enumerate(channels):
        for index in range(arch.blocks or 1):
            entry = stage > 0 and index == 0
            stride = 2 if entry and size >= 2 else 1
            blocks.append(ResidualBlock(width, c, k, stride, arch.activation, project=entry or width != c))
            size, width = (size + stride - 1) // stride, c
    return nn.Sequential(*stem, *blocks), width


class ResidualBlock(nn.Module):
    """The two-convolution basic block of ResNet-18, with a 1x1 projection shortcut where shapes change."""

    def __init__(self, width: int, out: int, k: int, stride: int, activation: str, *, project: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, out, k, stride=stride, padding=k // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(out)
        self.conv2 = nn.Conv2d(out, out, k, padding=k // 2, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        self.act = _ACTIVATIONS[activation]()
        self.shortcut = (nn.Sequential(nn.Conv2d(width, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
                         if project else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(y)) + self.shortcut(x))


def architecture_document(arch: ArchitectureSpec, input_shape: list[int], n_outputs: int,
                          image_shape: list[int] | None, task: str, preprocessing: dict[str, Any]) -> dict[str, Any]:
    """A JSON-able description from which :func:`network_from_document` rebuilds the same module."""
    return {
        "format": DOCUMENT_FORMAT,
        "architecture": arch.model_dump(mode="json"),
        "input_shape": list(input_shape),
        "n_outputs": n_outputs,
        "image_shape": list(image_shape) if image_shape else None,
        "task": task,
        "preprocessing": preprocessing,
    }


def network_from_document(doc: dict[str, Any]) -> nn.Module:
    """Rebuild the (untrained) network a document describes; load weights into it afterwards."""
    if doc.get("format") != DOCUMENT_FORMAT:
        raise InvalidModel(f"Unknown architecture document format {doc.get('format')!r}.")
    arch = ArchitectureSpec.model_validate(doc["architecture"])
    return build_network(arch, doc["input_shape"], doc["n_outputs"], doc["image_shape"])
