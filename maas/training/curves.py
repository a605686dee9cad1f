"""Learning curves as a PNG: train/val loss on the left, the validation metric on the right."""

from __future__ import annotations

import io
from typing import Any

from matplotlib.figure import Figure

# The first of these that the history holds is drawn on the right-hand panel.
_METRICS = ("val_accuracy", "val_r2", "val_f1_macro", "val_rmse", "val_mae")


def plot_curves(history: list[dict[str, Any]]) -> bytes:
    """Render ``history`` (the trainer's per-epoch entries) to PNG bytes."""
    # A bare Figure draws with the Agg canvas and never touches pyplot's global state or a display.
    figure = Figure(figsize=(9, 3.5), dpi=100, layout="constrained")
    loss_axes, metric_axes = figure.subplots(1, 2)
    epochs = [entry["epoch"] for entry in history]
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        loss_axes.plot(epochs, [entry.get(key) for entry in history], marker=".", label=label)
    _decorate(loss_axes, "loss")
    loss_axes.legend()
    metric = next((m for m in _METRICS if history and m in history[0]), None)
    if metric is not None:
        metric_axes.plot(epochs, [entry.get(metric) for entry in history], marker=".", color="tab:green")
    _decorate(metric_axes, metric or "no validation metric")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _decorate(axes: Any, title: str) -> None:
    axes.set_title(title)
    axes.set_xlabel("epoch")
    axes.grid(alpha=0.3)
