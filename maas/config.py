"""Typed settings: environment variables with the ``MAAS_`` prefix, an optional YAML file, CLI overrides.

Precedence (highest first): explicit keyword arguments (the CLI flags), ``MAAS_*`` environment variables,
the YAML file named by ``MAAS_CONFIG``, the defaults below.
"""

from __future__ import annotations

import ipaddress
import os
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from maas.errors import ConfigError

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


@cache  # asked on every unauthenticated request; parsing an address costs more than the rest of the check
def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the same keys as the environment (without the prefix, lower case) from ``MAAS_CONFIG``."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("MAAS_CONFIG")
        if not path:
            return {}
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"Cannot read the config file {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"The config file {path} must hold a mapping of settings.")
        return {str(k).lower().removeprefix("maas_"): v for k, v in loaded.items()}


class Settings(BaseSettings):
    """Everything a replica needs to know; built once in the composition root and passed down."""

    model_config = SettingsConfigDict(env_prefix="MAAS_", extra="ignore", frozen=True)

    data_dir: Path = Path("./data")
    """Artifacts, uploaded datasets, checkpoints and the SQLite file live here."""

    database_url: str | None = None
    """Any SQLAlchemy URL; default ``sqlite:///$MAAS_DATA_DIR/maas.db``."""

    host: str = "127.0.0.1"
    """Bind address. Anything but loopback needs API keys (``MAAS_ADMIN_KEY`` or stored keys)."""

    port: int = Field(default=8000, ge=0, le=65535)
    """Bind port."""

    workers: int = Field(default=1, ge=0, le=64)
    """Concurrent training/export jobs in this replica (job-worker threads)."""

    device: str = "auto"
    """``cpu``, ``cuda``, ``cuda:N``; ``auto`` picks CUDA when available."""

    torch_half: bool = False
    """Serve PyTorch variants in float16 on a GPU (inputs and outputs stay float32; ignored on the CPU)."""

    admin_key: str | None = None
    """Bootstrap admin key (scope ``admin``): manages keys for every tenant."""

    max_upload_mb: float = Field(default=200.0, gt=0)
    """Largest dataset or model upload, in MiB (413 above it)."""

    max_request_mb: float = Field(default=16.0, gt=0)
    """Largest JSON or binary request body, in MiB (413 above it)."""

    max_attempts: int = Field(default=3, ge=1, le=100)
    """A job that failed (or whose replica died) this many times is marked failed."""

    lease_seconds: float = Field(default=30.0, gt=0)
    """How long a claimed job stays ours without a heartbeat."""

    heartbeat_seconds: float = Field(default=5.0, gt=0)
    """How often a worker renews the leases of its running jobs."""

    warm_child: bool = True
    """Keep one job child per worker started ahead, its imports done: ~2 s off every job's start, for the memory
    of an idle interpreter with torch imported (~250 MB)."""

    poll_seconds: float = Field(default=1.0, gt=0)
    """How often an idle worker looks for queued jobs."""

    model_cache_mb: float = Field(default=2048.0, gt=0)
    """Memory budget of loaded models; least-recently-used ones are unloaded past it."""

    max_batch_size: int = Field(default=64, ge=1, le=4096)
    """Default largest batch the dynamic batcher forms for a model."""

    max_delay_ms: float = Field(default=0.0, ge=0)
    """Time a lone request may wait for company; 0 = opportunistic batching (no timed window)."""

    max_queue: int = Field(default=1024, ge=1)
    """Requests waiting per loaded model before new ones get 503 + Retry-After."""

    request_timeout_s: float = Field(default=30.0, gt=0)
    """Deadline of a prediction request, queueing included (504 past it)."""

    inline_batch_us: float = Field(default=150.0, ge=0)
    """A batch runs on the event loop instead of the model's thread when the model's time per request in it
    (moving average) is under this, and the whole batch's under 8 times this: the thread hand-off costs more
    than such a batch gains by overlapping the loop's work. 0 = always use the model's thread."""

    ort_intra_op_threads: int = Field(default=1, ge=0)
    """ONNX Runtime intra-op threads per session (0 = ORT's default: all cores)."""

    ort_spinning: bool = False
    """Let ONNX Runtime threads spin while idle (faster on dedicated cores, worse when sharing them)."""

    log_level: str = "info"
    """Python log level of the server."""

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        index = value.removeprefix("cuda:")
        if value in {"auto", "cpu", "cuda"} or (index != value and index.isascii() and index.isdigit()):
            return value
        raise ValueError("device must be auto, cpu, cuda or cuda:N")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _YamlSource(settings_cls)

    # --- derived values -------------------------------------------------------------------------------
    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'maas.db').resolve()}"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def checkpoints_dir(self) -> Path:
        return self.data_dir / "checkpoints"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_mb * 1024 * 1024)

    def check_bind_is_safe(self, has_stored_keys: bool) -> None:
        """Refuse to expose an unauthenticated server beyond this machine."""
        if is_loopback(self.host) or self.admin_key or has_stored_keys:
            return
        raise ConfigError(
            f"Refusing to bind {self.host}: no API keys are configured. Set MAAS_ADMIN_KEY (and create keys "
            "with `maas keys create`) or bind 127.0.0.1."
        )
