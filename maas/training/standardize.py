"""Fit the input (and regression target) standardisation on the train split only.

Tabular data is scaled per feature, like scikit-learn's StandardScaler. Images are scaled per channel, because
per-pixel statistics blow up rare pixels (a digits corner that is almost always 0) into huge values at test time.
Statistics are always shaped like one input row, so :class:`ServingModule` applies them the same way for both.
"""

from __future__ import annotations

import math

import numpy as np

_TINY = 1e-8  # below this a feature is constant on the train split; dividing by it would only amplify noise


def feature_statistics(x_train: np.ndarray, image_shape: list[int] | None,
                       enabled: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """``(mean, std, mode)`` with mean/std shaped like one row of ``x_train``; mode names what was fitted."""
    row_shape = x_train.shape[1:]
    if not enabled:
        return np.zeros(row_shape, np.float32), np.ones(row_shape, np.float32), "none"
    x = x_train.astype(np.float64)
    if image_shape is None:
        mean, std, mode = x.mean(axis=0), x.std(axis=0), "per_feature"
    else:
        channels = x.reshape(len(x), image_shape[0], -1)
        per_pixel = math.prod(image_shape[1:])
        mean = np.repeat(channels.mean(axis=(0, 2)), per_pixel).reshape(row_shape)
        std = np.repeat(channels.std(axis=(0, 2)), per_pixel).reshape(row_shape)
        mode = "per_channel"
    std = np.where(std < _TINY, 1.0, std)
    return mean.astype(np.float32), std.astype(np.float32), mode


def target_statistics(y_train: np.ndarray, enabled: bool) -> tuple[float, float]:
    """Mean and std of a regression target, so the network learns values of order 1 whatever the units."""
    if not enabled:
        return 0.0, 1.0
    std = float(np.std(y_train, dtype=np.float64))
    return float(np.mean(y_train, dtype=np.float64)), (std if std >= _TINY else 1.0)
