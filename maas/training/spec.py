"""The body of ``POST /train``: what to train, how, and what to export.

Every model forbids unknown fields (a typo must be a 422, not a silently ignored setting) and bounds every size,
so an absurd request fails at validation instead of exhausting memory in a worker. Fields that only some
architectures use default to ``None`` here and get their per-type default in :func:`resolve_architecture`, once
the dataset is known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from maas.datasets.splits import split_sizes
from maas.errors import InvalidSpec
from maas.training.sizing import MAX_PARAMETERS, estimate_parameters

if TYPE_CHECKING:
    from maas.datasets.schema import DatasetSchema

ArchitectureType = Literal["auto", "linear", "mlp", "cnn", "resnet"]
Width = Annotated[int, Field(ge=1, le=8192)]
Channels = Annotated[int, Field(ge=1, le=1024)]

# Which optional fields each architecture reads, and their defaults when the request leaves them out.
# Measured on the built-ins: batch norm makes the MLP a better classifier (iris, breast_cancer, digits) but
# costs ~0.1 R^2 on small noisy regression targets (diabetes), so regression turns it off by default.
_ARCH_DEFAULTS: dict[str, dict[str, object]] = {
    "linear": {},
    "mlp": {"hidden": [256, 256], "dropout": 0.1, "batch_norm": True},
    "cnn": {"channels": [32, 64], "kernel_size": 3, "pooling": "max", "fc": [128], "dropout": 0.1,
            "batch_norm": True},
    "resnet": {"channels": [32, 64], "kernel_size": 3, "blocks": 1, "fc": [], "dropout": 0.0},
}
_REGRESSION_DEFAULTS: dict[str, dict[str, object]] = {"mlp": {"batch_norm": False}}
# The validation metrics the trainer records every epoch, hence the ones early stopping can watch.
_EPOCH_METRICS = {
    "classification": ("val_loss", "val_accuracy", "val_f1_macro"),
    "regression": ("val_loss", "val_r2", "val_rmse", "val_mae"),
}
_OPTIONAL_FIELDS = ("hidden", "dropout", "batch_norm", "channels", "kernel_size", "pooling", "fc", "blocks")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ArchitectureSpec(_Strict):
    type: ArchitectureType = "auto"
    hidden: list[Width] | None = Field(default=None, max_length=16, description="MLP hidden layer widths.")
    activation: Literal["relu", "gelu", "tanh", "silu"] = "relu"
    dropout: float | None = Field(default=None, ge=0.0, lt=1.0)
    batch_norm: bool | None = None
    channels: list[Channels] | None = Field(default=None, min_length=1, max_length=8, description="Conv stage widths.")
    kernel_size: int | None = Field(default=None, ge=1, le=11)
    pooling: Literal["max", "avg"] | None = None
    fc: list[Width] | None = Field(default=None, max_length=16, description="Hidden widths of the CNN head.")
    blocks: int | None = Field(default=None, ge=1, le=8, description="Residual blocks per ResNet stage.")

    @model_validator(mode="after")
    def _not_absurdly_large(self) -> ArchitectureSpec:
        # A lower bound (one input feature, one output) that needs no dataset: rejects huge requests early.
        too_big = self.type != "auto" and estimate_parameters(_with_defaults(self), [1], 1, [1, 1, 1]) > MAX_PARAMETERS
        if too_big:
            raise ValueError(f"the network would have more than {MAX_PARAMETERS:,} parameters")
        return self


MIN_TRAIN_ROWS = 2  # prepare_data's own floor


class EarlyStopping(_Strict):
    patience: int = Field(default=5, ge=1, le=1000)
    metric: Literal["val_loss", "val_accuracy", "val_f1_macro", "val_r2", "val_rmse", "val_mae"] = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"
    min_delta: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)

    @property
    def minimize(self) -> bool:
        if self.mode != "auto":
            return self.mode == "min"
        return self.metric in ("val_loss", "val_rmse", "val_mae")


class HyperParameters(_Strict):
    epochs: int = Field(default=30, ge=1, le=1000)
    batch_size: int | None = Field(default=None, ge=1, le=65536,
                                   description="Default: 64, smaller on small datasets (at least 10 steps an epoch).")
    optimizer: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float = Field(default=1e-3, gt=0.0, allow_inf_nan=False)
    weight_decay: float = Field(default=1e-4, ge=0.0, le=1.0)
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    schedule: Literal["none", "cosine", "step", "one_cycle"] = "cosine"
    step_size: int = Field(default=10, ge=1, le=1000, description="Epochs between decays of the step schedule.")
    gamma: float = Field(default=0.1, gt=0.0, le=1.0)
    early_stopping: EarlyStopping | None = Field(default_factory=EarlyStopping)
    grad_clip: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    val_fraction: float = Field(default=0.1, gt=0.0, le=0.5)
    test_fraction: float = Field(default=0.2, gt=0.0, le=0.5)
    standardize: bool = True
    amp: bool = Field(default=True, description="Mixed precision; only ever used on CUDA.")

    @model_validator(mode="after")
    def _leaves_rows_to_train_on(self) -> HyperParameters:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must be below 1, to leave rows to train on")
        return self


class ExportSpec(_Strict):
    onnx: bool = True
    quantize: list[Literal["dynamic", "static", "fp16"]] = Field(default_factory=list, max_length=3)
    max_accuracy_drop: float = Field(default=0.01, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _quantize_needs_onnx(self) -> ExportSpec:
        if self.quantize and not self.onnx:
            raise ValueError("quantize needs onnx: true (the quantized variants are made from the ONNX export)")
        if len(set(self.quantize)) != len(self.quantize):
            raise ValueError("quantize lists a variant twice")
        return self


class TrainSpec(_Strict):
    dataset: str = Field(min_length=1, max_length=200)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    architecture: ArchitectureSpec = Field(default_factory=ArchitectureSpec)
    hyperparameters: HyperParameters = Field(default_factory=HyperParameters)
    export: ExportSpec = Field(default_factory=ExportSpec)
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d{1,2})?)$")


def resolve_architecture(spec: ArchitectureSpec, schema: DatasetSchema) -> ArchitectureSpec:
    """Pick the type for ``auto``, fill per-type defaults, and check the type fits the dataset."""
    if schema.modality == "text":
        raise InvalidSpec("Text models come later; this dataset is text, so it cannot be trained yet.")
    kind = spec.type if spec.type != "auto" else ("cnn" if schema.modality == "image" else "mlp")
    if kind in ("cnn", "resnet") and image_shape_of(schema) is None:
        raise InvalidSpec(f"A {kind} needs images, but this dataset is {schema.modality} data without an "
                          "image shape; use type mlp or linear.")
    unused = sorted(f for f in spec.model_fields_set & set(_OPTIONAL_FIELDS) if f not in _ARCH_DEFAULTS[kind])
    if unused:
        raise InvalidSpec(f"Architecture {kind} does not use {', '.join(unused)}.", details=unused)
    resolved = _with_defaults(spec.model_copy(update={"type": kind}), schema.task)
    n_params = estimate_parameters(resolved, list(schema.input_shape), output_count(schema), image_shape_of(schema))
    if n_params > MAX_PARAMETERS:
        raise InvalidSpec(f"The network would have about {n_params:,} parameters; the limit is {MAX_PARAMETERS:,}.")
    return resolved


def resolve_spec(spec: TrainSpec, schema: DatasetSchema) -> TrainSpec:
    """Everything that needs the dataset to check: the splits, the architecture and the early-stopping metric."""
    hp = spec.hyperparameters
    train, val, test = split_sizes(schema.n_rows, hp.val_fraction, hp.test_fraction)
    if train < MIN_TRAIN_ROWS or val < 1 or test < 1:
        raise InvalidSpec(f"The dataset's {schema.n_rows} rows split into {train} to train on, {val} to validate "
                          f"and {test} to test with these fractions; each needs rows (training at least "
                          f"{MIN_TRAIN_ROWS}).")
    architecture = resolve_architecture(spec.architecture, schema)
    stopping = spec.hyperparameters.early_stopping
    if stopping is not None:
        allowed = _EPOCH_METRICS[schema.task]
        if stopping.metric not in allowed:
            raise InvalidSpec(f"Early stopping on {stopping.metric} is not possible for {schema.task}; "
                              f"use one of {', '.join(allowed)}.")
    return spec.model_copy(update={"architecture": architecture})


def image_shape_of(schema: DatasetSchema) -> list[int] | None:
    """``[C, H, W]`` when the rows are images (stored flat, like digits, or as they are), else ``None``."""
    if schema.image_shape:
        return list(schema.image_shape)
    return list(schema.input_shape) if schema.modality == "image" and len(schema.input_shape) == 3 else None


def output_count(schema: DatasetSchema) -> int:
    """Width of the network's output: one logit per class, or one value for regression."""
    if schema.task == "regression":
        return 1
    if not schema.classes:
        raise InvalidSpec("The dataset schema lists no classes, so a classifier cannot be sized.")
    return len(schema.classes)


def _with_defaults(spec: ArchitectureSpec, task: str = "classification") -> ArchitectureSpec:
    """Fill the fields ``spec.type`` uses and the request left out; clear the ones it does not use."""
    defaults = _ARCH_DEFAULTS.get(spec.type, {})
    if task == "regression":
        defaults = {**defaults, **_REGRESSION_DEFAULTS.get(spec.type, {})}
    update = {f: (getattr(spec, f) if getattr(spec, f) is not None else defaults.get(f)) for f in _OPTIONAL_FIELDS}
    return spec.model_copy(update={f: (v if f in defaults else None) for f, v in update.items()})
