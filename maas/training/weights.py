"""Trained weights as safetensors bytes, loaded back into a module rebuilt from its architecture document.

safetensors holds raw tensors only, so loading a stored model never unpickles anything.
"""

from __future__ import annotations

from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save
from torch import nn

from maas.errors import InvalidModel
from maas.training.serving import serving_module_from_document


def save_weights(state_dict: dict[str, torch.Tensor]) -> bytes:
    # safetensors refuses views and shared storage, so store independent contiguous copies.
    return save({k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()})


def load_serving_module(architecture_doc: dict[str, Any], weights: bytes) -> nn.Module:
    """The serving module ``architecture_doc`` describes, with ``weights`` loaded, in eval mode on the CPU."""
    module = serving_module_from_document(architecture_doc)
    try:
        state = load(weights)
    except SafetensorError as exc:
        raise InvalidModel("The stored weights are not a valid safetensors file.") from exc
    missing, unexpected = _mismatch(module, state)
    if missing or unexpected:
        raise InvalidModel("The weights do not match the architecture.", details=[*missing, *unexpected][:20])
    module.load_state_dict(state)
    return module.eval()


def _mismatch(module: nn.Module, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    expected = module.state_dict()
    missing = [f"missing: {k}" for k in expected if k not in state]
    unexpected = [f"unexpected: {k}" for k in state if k not in expected]
    shapes = [f"shape of {k}" for k in expected if k in state and state[k].shape != expected[k].shape]
    return missing + shapes, unexpected
