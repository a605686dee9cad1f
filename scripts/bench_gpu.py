"""GPU serving benchmark: maas's PyTorch serving path against a bare PyTorch loop on the same device, in one run.

1. Trains the digits CNN briefly with ``maas.training`` (on ``--device``; accuracy is not the point) and stores
   its weights as maas does: the architecture document plus safetensors bytes, rebuilt with
   ``load_serving_module`` (never a pickle).
2. (a) The limit: a bare PyTorch loop on the device in ``inference_mode`` doing the work maas does per batch
   (float32 numpy -> tensor -> device -> forward -> CPU numpy) at batch 1, 64 and 1024, and the GPU forward
   alone with the input already on the device (the compute limit).
3. (b) ``TorchBackend.predict`` at the same batches: what maas's backend adds to (a).
4. (c) The serving engine in-process: an ``InferenceEngine`` (cache, runner, dynamic batcher, backend) driven
   by K concurrent asyncio submitters, K=64 with 1-row requests and K=16 with 64-row requests.
5. (d) ``--http``: a real ``maas serve`` (``MAAS_DEVICE``, no job workers) with the same weights registered as
   a torch version, driven by a minimal asyncio HTTP/1.1 client (wrk's method: one prepared request, resent
   on keep-alive connections; wrk itself may be missing) in ``--clients`` processes: 1-row JSON ``/predict``
   at concurrency 64 and 64-row V2 binary-tensor ``infer`` requests at concurrency 16. A failure here is
   printed and the in-process results still are. With few cores the clients compete with the server.

Prints torch's version and the GPU, then a table with the ratios to the bare loop. ``--half`` serves (and
measures the bare loop) in float16, as ``MAAS_TORCH_HALF=true`` does. Run on a GPU machine:
``python scripts/bench_gpu.py --http`` (~1 min); anywhere: ``--device cpu --seconds 1``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import multiprocessing
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Coroutine
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from bench_serve import maas_command, server

MODEL = "digits-cnn"
TENANT = "default"  # the tenant of an unauthenticated loopback caller (maas.security.principals)
BATCHES = (1, 64, 1024)
LOADS = ((64, 1), (16, 64))  # (concurrent submitters, rows per request)
FEATURES = 64


@dataclasses.dataclass(frozen=True)
class Load:
    """One closed-loop load: every submitter sends its next request when the previous one is answered."""

    requests: int
    rows: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    first_error: str = ""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def samples(self) -> float:
        return self.requests * self.rows / self.seconds

    @classmethod
    def of(cls, latencies: list[float], rows: int, seconds: float, errors: int = 0, first_error: str = "") -> Load:
        ms = np.asarray(latencies or [float("nan")]) * 1e3
        return cls(len(latencies), rows, seconds, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), errors,
                   first_error)


@dataclasses.dataclass
class Results:
    bare: dict[int, float]  # batch -> samples/s, numpy in and out
    forward: dict[int, float]  # batch -> samples/s, input already on the device
    backend: dict[int, float]
    engine: dict[tuple[int, int], Load]
    http: dict[tuple[int, int], Load]


def rows(n: int) -> np.ndarray:
    """Digits-like rows (pixel values 0..16), the same for every path."""
    return np.random.default_rng(0).uniform(0, 16, (n, FEATURES)).astype(np.float32)


# --- the model ---------------------------------------------------------------------------------------------
def train_cnn(device: str, epochs: int) -> tuple[dict[str, Any], bytes, list[Any]]:
    """The digits CNN trained briefly: (architecture document, safetensors weights, classes)."""
    from maas.datasets.builtin import load_builtin
    from maas.training.spec import TrainSpec
    from maas.training.trainer import train
    from maas.training.weights import save_weights

    data = load_builtin("digits")
    spec = TrainSpec.model_validate({"dataset": "digits", "architecture": {"type": "cnn"},
                                     "hyperparameters": {"epochs": epochs, "early_stopping": None}})
    started = time.perf_counter()
    result = train(data, spec, checkpoint_path=None, device=device)
    print(f"trained {MODEL} on {result.device}: accuracy {result.metrics.get('accuracy', 0):.3f} "
          f"in {time.perf_counter() - started:.1f} s", flush=True)
    return result.architecture, save_weights(result.state_dict), list(data.schema.classes or [])


# --- (a) the bare loop and (b) the backend -----------------------------------------------------------------
def samples_per_second(step: Callable[[], object], batch: int, seconds: float, sync: Callable[[], None]) -> float:
    for _ in range(10):
        step()
    sync()
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        runs += 1
    sync()  # queued GPU work counts too
    return runs * batch / (time.perf_counter() - started)


def measure_bare(architecture: dict[str, Any], weights: bytes, device: str, half: bool,
                 seconds: float) -> tuple[dict[int, float], dict[int, float]]:
    import torch

    from maas.training.weights import load_serving_module

    autocast = half and device.startswith("cuda")  # float16 autocast, as TorchBackend does with half=True
    module = load_serving_module(architecture, weights).to(device=device).eval()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    bare, forward = {}, {}
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=autocast):
        for batch in BATCHES:
            x = rows(batch)
            on_device = torch.from_numpy(x).to(device=device)

            def round_trip(x: np.ndarray = x) -> np.ndarray:
                return module(torch.from_numpy(x).to(device=device)).float().cpu().numpy()

            def compute(t: Any = on_device) -> Any:
                return module(t)

            bare[batch] = samples_per_second(round_trip, batch, seconds, sync)
            forward[batch] = samples_per_second(compute, batch, seconds, sync)
            print(f"  bare b={batch}: {bare[batch]:,.0f} samples/s; forward only {forward[batch]:,.0f}", flush=True)
    return bare, forward


def measure_backend(architecture: dict[str, Any], weights_path: Path, device: str, half: bool,
                    seconds: float) -> dict[int, float]:
    from maas.inference.backends import TorchBackend

    backend = TorchBackend(architecture, weights_path, input_shape=[FEATURES], device=device, half=half)
    backend.load()
    rates = {}
    try:
        for batch in BATCHES:
            x = rows(batch)

            def predict(x: np.ndarray = x) -> dict[str, np.ndarray]:
                return backend.predict(x)

            # predict returns CPU numpy, so every call has already waited for the device: nothing to sync.
            rates[batch] = samples_per_second(predict, batch, seconds, lambda: None)
            print(f"  TorchBackend b={batch}: {rates[batch]:,.0f} samples/s", flush=True)
    finally:
        backend.unload()
    return rates


# --- (c) the engine in-process -----------------------------------------------------------------------------
class OneVersion:
    """The registry's side of the engine contract (``VersionResolver``) for the one benchmarked version."""

    def __init__(self, servable: Any) -> None:
        self.servable = servable

    def resolve(self, tenant: str, model: str, ref: int | str | None) -> Any:
        return self.servable


def run_async(main: Coroutine[Any, Any, Any]) -> Any:
    """Run on uvloop when installed, as ``maas serve`` does."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def closed_loop(call: Callable[[], Coroutine[Any, Any, Any]], concurrency: int, seconds: float) -> Load:
    """``concurrency`` submitters calling ``call`` back to back for ``seconds``; a raised exception is an error."""
    latencies: list[float] = []
    errors: list[str] = []
    stop_at = time.perf_counter() + seconds

    async def submitter() -> None:
        while (started := time.perf_counter()) < stop_at:
            try:
                await call()
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
            else:
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(submitter() for _ in range(concurrency)))
    return Load.of(latencies, 1, time.perf_counter() - started, len(errors), errors[0] if errors else "")


def measure_engine(architecture: dict[str, Any], weights_path: Path, classes: list[Any], device: str, half: bool,
                   seconds: float, max_batch_size: int | None = None) -> dict[tuple[int, int], Load]:
    from maas.config import Settings
    from maas.inference.engine import InferenceEngine
    from maas.inference.servable import ServableArtifact, ServableVersion

    data = weights_path.read_bytes()
    artifact = ServableArtifact("torch", weights_path, hashlib.sha256(data).hexdigest(), len(data))
    servable = ServableVersion(tenant=TENANT, model=MODEL, version=1, task="classification", classes=classes,
                               feature_names=None, input_shape=[FEATURES], artifacts={"torch": artifact},
                               architecture=architecture, default_variant="torch",
                               max_batch_size=max_batch_size)  # the model's own setting, as PUT .../serving sets
    settings = Settings(device=device, torch_half=half)  # the server's defaults for batching and the queue

    async def main() -> dict[tuple[int, int], Load]:
        engine = InferenceEngine(settings, OneVersion(servable))
        await engine.start()
        loads = {}
        try:
            for concurrency, n in LOADS:
                x = rows(n)

                async def call(x: np.ndarray = x) -> Any:
                    return await engine.predict(TENANT, MODEL, None, None, x)

                await closed_loop(call, concurrency, min(1.0, seconds))  # loads the model, warms the batcher
                loads[concurrency, n] = dataclasses.replace(await closed_loop(call, concurrency, seconds), rows=n)
                print(f"  engine c={concurrency} x{n}: {describe(loads[concurrency, n])}", flush=True)
        finally:
            await engine.stop()
        return loads

    return run_async(main())  # type: ignore[no-any-return]


# --- (d) a real server over HTTP ---------------------------------------------------------------------------
def register_torch_version(data_dir: Path, architecture: dict[str, Any], weights: bytes, classes: list[Any]) -> int:
    """Register the weights as the server's job worker would (``jobs.registration``), on its own database."""
    from maas.config import Settings
    from maas.registry.db import Database
    from maas.registry.service import NewArtifact, NewVersion, RegistryService
    from maas.storage import ArtifactStore

    settings = Settings(data_dir=data_dir)
    registry = RegistryService(Database(settings.resolved_database_url), ArtifactStore(settings.artifacts_dir))
    blob = registry.store.put_bytes(weights)
    new = NewVersion(
        task="classification", artifacts=[NewArtifact("torch", blob, {"format": "safetensors"})],
        input_schema={"inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, FEATURES]}],
                      "input_shape": [FEATURES], "feature_names": None},
        output_schema={"outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, len(classes)]}],
                       "classes": classes},
        architecture=architecture, lineage={"source": "bench_gpu"},
    )
    return registry.register_version(TENANT, MODEL, new).version


def v2_body(n: int) -> tuple[bytes, int]:
    """A V2 infer request with the input as raw float32 (Triton's binary extension) and binary outputs."""
    tensor = rows(n).tobytes()
    header = json.dumps({
        "inputs": [{"name": "input", "shape": [n, FEATURES], "datatype": "FP32",
                    "parameters": {"binary_data_size": len(tensor)}}],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
    }, separators=(",", ":")).encode()
    return header + tensor, len(header)


def request_of(n: int) -> tuple[str, bytes, dict[str, str]]:
    """1 row: JSON ``/predict`` (what most clients send); more: one V2 binary-tensor request."""
    if n == 1:
        body = json.dumps({"model": MODEL, "inputs": rows(1).round(1).tolist()}, separators=(",", ":")).encode()
        return "/predict", body, {"Content-Type": "application/json"}
    body, header_length = v2_body(n)
    return f"/v2/models/{MODEL}/infer", body, {"Content-Type": "application/octet-stream",
                                               "Inference-Header-Content-Length": str(header_length)}


def http_client(url: str, n: int, concurrency: int, start_at: float, seconds: float) -> tuple[Load, list[float]]:
    """One client process: ``concurrency`` keep-alive connections posting back to back from ``start_at``."""
    latencies: list[float] = []

    async def main() -> Load:
        post = RawPoster(url, *request_of(n))
        await asyncio.sleep(max(0.0, start_at - time.time()))  # all processes together (spawning takes a while)
        await closed_loop(post, concurrency, 0.5)  # opens the connections (idle ones close after 5 s)
        post.latencies = latencies
        try:
            return await closed_loop(post, concurrency, seconds)
        finally:
            post.close()

    return run_async(main()), latencies


class RawPoster:
    """A tiny wrk: the same prepared HTTP/1.1 request, over and over, on a pool of keep-alive connections.

    Not httpx: its connection pool collapses at high concurrency (measured 108 req/s at 64 connections, where
    wrk got 4,200 req/s from the same server on 2 cores), so it would measure itself instead of maas.
    """

    def __init__(self, url: str, path: str, body: bytes, headers: dict[str, str]) -> None:
        self._address = httpx.URL(url)
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self._request = (f"POST {path} HTTP/1.1\r\nHost: {self._address.netloc.decode()}\r\n{head}"
                         f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.latencies: list[float] | None = None

    async def __call__(self) -> None:
        started = time.perf_counter()
        reader, writer = self._idle.pop() if self._idle else await asyncio.open_connection(
            self._address.host, self._address.port)
        try:
            writer.write(self._request)
            head = await reader.readuntil(b"\r\n\r\n")
            body = await reader.readexactly(_content_length(head))
        except BaseException:
            writer.close()  # a broken connection is replaced by the next call
            raise
        self._idle.append((reader, writer))
        if head[9:12] != b"200":
            raise RuntimeError(f"HTTP {head[9:12].decode()}: {body[:200]!r}")
        if self.latencies is not None:
            self.latencies.append(time.perf_counter() - started)

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise RuntimeError(f"no Content-Length in the answer: {head[:200]!r}")


def drive_http(url: str, n: int, concurrency: int, seconds: float, clients: int) -> Load:
    """``concurrency`` connections spread over ``clients`` processes (one Python client cannot saturate maas)."""
    clients = max(1, min(clients, concurrency))
    shares = [concurrency // clients + (i < concurrency % clients) for i in range(clients)]
    start_at = time.time() + 3.0  # spawned clients import and connect first
    with multiprocessing.get_context("spawn").Pool(clients) as pool:
        parts = pool.starmap(http_client, [(url, n, share, start_at, seconds) for share in shares])
    latencies = [latency for _, part in parts for latency in part]
    first_error = next((load.first_error for load, _ in parts if load.first_error), "")
    return Load.of(latencies, n, seconds, sum(load.errors for load, _ in parts), first_error)


@contextmanager
def maas_server(folder: Path, device: str, half: bool) -> Any:
    env = {"MAAS_DATA_DIR": str(folder / "data"), "MAAS_WORKERS": "0", "MAAS_LOG_LEVEL": "warning",
           "MAAS_DEVICE": device, "MAAS_TORCH_HALF": str(half).lower()}
    with server(maas_command([]), env, "/healthz", folder / "maas.log") as url:
        yield url


def measure_http(folder: Path, architecture: dict[str, Any], weights: bytes, classes: list[Any], device: str,
                 half: bool, seconds: float, clients: int, max_batch_size: int | None = None
                 ) -> dict[tuple[int, int], Load]:
    loads: dict[tuple[int, int], Load] = {}
    try:
        with maas_server(folder, device, half) as url:
            version = register_torch_version(folder / "data", architecture, weights, classes)
            if max_batch_size is not None:  # the model's own batching setting, through the API
                httpx.put(f"{url}/models/{MODEL}/serving", json={"max_batch_size": max_batch_size},
                          timeout=30).raise_for_status()
            path, body, headers = request_of(1)
            warm = httpx.post(url + path, content=body, headers=headers, timeout=120)  # loads the model
            warm.raise_for_status()
            print(f"  maas serve at {url}: {MODEL} v{version} answers with variant {warm.json()['variant']!r}",
                  flush=True)
            for concurrency, n in LOADS:
                loads[concurrency, n] = drive_http(url, n, concurrency, seconds, clients)
                print(f"  HTTP{protocol(n)} c={concurrency} x{n}: {describe(loads[concurrency, n])}", flush=True)
    except Exception:
        print("HTTP benchmark failed; the in-process results stand:\n" + traceback.format_exc(), flush=True)
        log = folder / "maas.log"
        if log.exists():
            print("end of the server's log:\n" + log.read_text()[-3000:], flush=True)
    return loads


# --- report ------------------------------------------------------------------------------------------------
def describe(load: Load) -> str:
    errors = f"{load.errors} (first: {load.first_error})" if load.errors else "0"
    return (f"{load.rps:,.0f} req/s, {load.samples:,.0f} samples/s, p50 {load.p50_ms:.2f} ms, "
            f"p99 {load.p99_ms:.2f} ms, errors {errors}")


def print_report(results: Results) -> None:
    print(f"\n{'path':<44} {'req/s':>10} {'samples/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for batch in BATCHES:
        print(f"{f'bare loop numpy->device->numpy b={batch}':<44} {'':>10} {results.bare[batch]:>12,.0f}")
    for batch in BATCHES:
        print(f"{f'bare forward, input on device b={batch}':<44} {'':>10} {results.forward[batch]:>12,.0f}")
    for batch in BATCHES:
        print(f"{f'TorchBackend.predict b={batch}':<44} {'':>10} {results.backend[batch]:>12,.0f}")
    for label, loads in (("engine in-process", results.engine), ("HTTP", results.http)):
        for (concurrency, n), load in loads.items():
            name = f"{label}{protocol(n) if loads is results.http else ''} c={concurrency} x{n} row{'s' * (n > 1)}"
            print(f"{name:<44} {load.rps:>10,.0f} {load.samples:>12,.0f} {load.p50_ms:>8.2f} {load.p99_ms:>8.2f} "
                  f"{load.errors:>6}")
    print()
    for label, ratio in ratios(results):
        print(f"{label:<52} {ratio:>7.2f}")


def protocol(n: int) -> str:
    return " /predict JSON" if n == 1 else " V2 binary"


def ratios(results: Results) -> list[tuple[str, float]]:
    """samples/s of each path over the bare loop's (batching turns 1-row requests into bigger batches)."""
    bare = results.bare
    out = [(f"bare loop b={b} / forward only b={b}", bare[b] / results.forward[b]) for b in BATCHES]
    out += [(f"TorchBackend b={b} / bare loop b={b}", results.backend[b] / bare[b]) for b in BATCHES]
    for label, loads in (("engine", results.engine), ("HTTP", results.http)):
        for (concurrency, n), load in loads.items():
            out += [(f"{label} c={concurrency} x{n} / bare loop b={b}", load.samples / bare[b])
                    for b in (1, 64, 1024) if b >= n]
    for key, load in results.http.items():
        if key in results.engine:
            out.append((f"HTTP c={key[0]} x{key[1]} / engine c={key[0]} x{key[1]}", load.samples /
                        results.engine[key].samples))
    return out


def device_line(device: str, half: bool) -> str:
    import torch

    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else f"{os.cpu_count()} CPU cores"
    cuda = f", CUDA {torch.version.cuda}" if device.startswith("cuda") else ""
    return f"torch {torch.__version__}{cuda}; device {device} ({name}); {'float16' if half else 'float32'}"


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cuda, cuda:N or cpu (default: cuda when available)")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs of the CNN")
    parser.add_argument("--half", action="store_true", help="serve in float16 on a GPU (MAAS_TORCH_HALF)")
    parser.add_argument("--http", action="store_true", help="also drive a real maas serve over HTTP")
    parser.add_argument("--max-batch-size", type=int, default=None,
                        help="the model's own max_batch_size (PUT /models/{name}/serving); default: the server's")
    parser.add_argument("--clients", type=int, default=max(1, min(8, (os.cpu_count() or 1) // 2)),
                        help="HTTP client processes (default: half the cores, at most 8)")
    args = parser.parse_args()
    half = args.half and args.device.startswith("cuda")
    print(device_line(args.device, half), flush=True)
    folder = Path(tempfile.mkdtemp(prefix="maas-bench-gpu-"))
    try:
        results = run(folder, args.device, half, args.seconds, args.epochs, args.http, args.clients,
                      args.max_batch_size)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print_report(results)


def run(folder: Path, device: str, half: bool, seconds: float, epochs: int, http: bool, clients: int,
        max_batch_size: int | None = None) -> Results:
    architecture, weights, classes = train_cnn(device, epochs)
    weights_path = folder / "digits-cnn.safetensors"
    weights_path.write_bytes(weights)
    print("(a) bare PyTorch loop", flush=True)
    bare, forward = measure_bare(architecture, weights, device, half, seconds)
    print("(b) maas TorchBackend", flush=True)
    backend = measure_backend(architecture, weights_path, device, half, seconds)
    from maas.config import Settings

    defaults = Settings()
    print(f"(c) maas engine in-process: max_batch_size {max_batch_size or defaults.max_batch_size}, max_delay_ms "
          f"{defaults.max_delay_ms:g}, inline_batch_us {defaults.inline_batch_us:g}", flush=True)
    engine = measure_engine(architecture, weights_path, classes, device, half, seconds, max_batch_size)
    results = Results(bare, forward, backend, engine, {})
    if http:
        print("(d) maas serve over HTTP", flush=True)
        results.http = measure_http(folder, architecture, weights, classes, device, half, seconds, clients,
                                    max_batch_size)
    return results


if __name__ == "__main__":
    main()
