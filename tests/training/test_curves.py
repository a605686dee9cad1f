from __future__ import annotations

import pytest

from maas.training.curves import plot_curves

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("metric", ["val_accuracy", "val_r2"])
def test_plots_a_png(metric: str) -> None:
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, metric: 1 - 1 / (e + 1), "lr": 1e-3}
               for e in range(1, 6)]
    assert plot_curves(history).startswith(PNG_SIGNATURE)


def test_an_empty_history_still_plots() -> None:
    assert plot_curves([]).startswith(PNG_SIGNATURE)
