"""Count a network's parameters from its spec alone, without torch.

The API validates requests without importing torch, so the size cap is checked with this arithmetic; a test keeps
it equal to the real count of :func:`maas.training.architectures.build_network` for every type.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from maas.training.spec import ArchitectureSpec

MAX_PARAMETERS = 50_000_000


def estimate_parameters(arch: ArchitectureSpec, input_shape: list[int], n_outputs: int,
                        image_shape: list[int] | None) -> int:
    """Trainable parameters of the network ``arch`` describes (``arch`` must have its defaults filled)."""
    if arch.type in ("cnn", "resnet"):
        channels = (image_shape or input_shape)[0]
        body, width = (_cnn(arch, channels) if arch.type == "cnn" else _resnet(arch, channels))
        return body + _dense(width, arch.fc or [], n_outputs, batch_norm=False)
    features = math.prod(input_shape)
    if arch.type == "linear":
        return features * n_outputs + n_outputs
    return _dense(features, arch.hidden or [], n_outputs, batch_norm=bool(arch.batch_norm))


def _dense(width: int, hidden: list[int], n_outputs: int, *, batch_norm: bool) -> int:
    total = 0
    for h in hidden:
        total += width * h + h + (2 * h if batch_norm else 0)
        width = h
    return total + width * n_outputs + n_outputs


def _cnn(arch: ArchitectureSpec, width: int) -> tuple[int, int]:
    k2 = (arch.kernel_size or 3) ** 2
    total = 0
    for c in arch.channels or []:
        total += width * c * k2 + (2 * c if arch.batch_norm else c)
        width = c
    return total, width


def _resnet(arch: ArchitectureSpec, width: int) -> tuple[int, int]:
    k2 = (arch.kernel_size or 3) ** 2
    channels = arch.channels or []
    total = width * channels[0] * k2 + 2 * channels[0]  # the stem: conv + batch norm
    width = channels[0]
    for stage, c in enumerate(channels):
        for block in range(arch.blocks or 1):
            # A projection shortcut where the width changes and at every stage entry (where the block may
            # downsample); it does not depend on the image size, so neither does this count.
            projection = width != c or (stage > 0 and block == 0)
            total += width * c * k2 + 2 * c + c * c * k2 + 2 * c + ((width * c + 2 * c) if projection else 0)
            width = c
    return total, width
