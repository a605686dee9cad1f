"""Serving benchmark: ``POST /predict`` of a real ``maas serve`` against its own limits, in one run.

1. Trains the digits MLP and CNN in-process with ``maas.training`` (a few epochs: accuracy is not the point),
   exports them to ONNX and imports them into a fresh ``maas serve`` (temp data dir, no job workers) with
   ``POST /models``.
2. Drives ``/predict`` with wrk (one JSON row of 64 floats per request) at concurrency 1, 16 and 64, and the
   CNN also with 64 rows per request (a client that batches itself: what the engine does with bulk traffic),
   as JSON and as a V2 ``infer`` request with Triton's binary tensor extension (raw float32, no JSON numbers
   to parse: what tritonclient sends with ``binary_data=True``).
3. Measures in-process ONNX Runtime on the same files at batch 1 and 64 (all cores): the compute limit.
4. A naive FastAPI server (pydantic body, one ORT call per request), driven the same way.
5. A bare uvicorn ASGI app that parses the same body with orjson and answers a constant: the HTTP floor.
6. The lean batching reference the serving issue cites ("a lean batching server reached 5.9x naive and 89% of
   the floor here"): ~40 lines of raw ASGI that parse with orjson into numpy, queue, and let one consumer task
   run everything queued (up to 64 rows) as one ORT call, answering labels and probabilities. It has none of
   maas's duties (keys, tenants, validation, deadlines, back-pressure, hang-ups, metrics, request ids), so it
   shows what this machine allows a batching server in the same run: how far maas is from it, and whether a
   missed goal is the machine's or maas's.

Every server runs under the same uvicorn with the same event loop and HTTP parser: uvloop and httptools when
they are installed (uvicorn's "auto", maas's default), else asyncio and h11; ``--loop asyncio --http h11``
measures all three on the pure-Python stack. The first line printed says which. Prints a table
and the ratios the serving issue asks for. ``--baseline DIR`` (a ``git worktree`` of an earlier commit) runs
maas's loads on that checkout too, interleaved, and prints the speed-up of this one over it. Every load runs
``--repeats`` times (default 3), interleaved across the servers (each MLP load's servers back to back), and the
medians are reported; each goal's ratio is the median of its rounds' own ratios, printed beside it. In-process
ONNX Runtime is measured in every round too. Run: ``.venv/bin/python scripts/bench_serve.py`` (~7 min).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = (1, 16, 64)
ROW = [round(float(v), 1) for v in np.random.default_rng(0).uniform(0, 16, 64)]
BULK_ROWS = 64
BULK_CONCURRENCY = 16
REFERENCES = ("floor", "lean", "naive")  # the uvicorn apps below, served as <label>_app; run in this order

NAIVE_APP = '''
import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel

session = ort.InferenceSession(os.environ["BENCH_MODEL"], providers=["CPUExecutionProvider"])
app = FastAPI()


class Body(BaseModel):
    model: str
    inputs: list[list[float]]


@app.post("/predict")
def predict(body: Body) -> dict:
    x = np.asarray(body.inputs, dtype=np.float32)
    (probabilities,) = session.run(None, {"input": x})
    return {"predictions": probabilities.argmax(axis=1).tolist(), "probabilities": probabilities.tolist()}
'''

FLOOR_APP = '''
import orjson

ANSWER = b'{"model":"digits","version":1,"variant":"onnx","predictions":[0]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    orjson.loads(body)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})
'''

LEAN_APP = '''
import asyncio
import os

import numpy as np
import onnxruntime as ort
import orjson

options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.add_session_config_entry("session.intra_op.allow_spinning", "0")
session = ort.InferenceSession(os.environ["BENCH_MODEL"], options, providers=["CPUExecutionProvider"])
waiting = []
ready = None


async def consume():
    while True:
        await ready.wait()
        ready.clear()
        while waiting:
            batch = waiting[:64]
            del waiting[:64]
            (scores,) = session.run(None, {"input": np.concatenate([x for x, _ in batch])})
            for i, (_, future) in enumerate(batch):
                future.set_result(scores[i:i + 1])


async def app(scope, receive, send):
    global ready
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            ready = asyncio.Event()
            asyncio.get_running_loop().create_task(consume())
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    document = orjson.loads(body)
    future = asyncio.get_running_loop().create_future()
    waiting.append((np.asarray(document["inputs"], dtype=np.float32), future))
    ready.set()
    scores = await future
    answer = orjson.dumps({"model": document["model"], "predictions": scores.argmax(axis=1).tolist(),
                           "probabilities": scores}, option=orjson.OPT_SERIALIZE_NUMPY)
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))]})
    await send({"type": "http.response.body", "body": answer})
'''

LUA = '''
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
'''
LUA_BINARY = '''
local file = io.open("{path}", "rb")
wrk.method = "POST"
wrk.body = file:read("*all")
file:close()
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.headers["Inference-Header-Content-Length"] = "{header_length}"
'''
V2_BINARY = "v2-binary"  # the protocol label of the V2 binary-tensor load


@dataclass(frozen=True)
class Load:
    """One wrk run."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    error_kinds: str = ""  # wrk's own words: "non-2xx 3", "Socket errors: connect 0, read 0, write 0, timeout 8"


# --- models ------------------------------------------------------------------------------------------------
def build_models(folder: Path, epochs: int) -> dict[str, Path]:
    """Train the digits MLP and CNN briefly and export both to ONNX; returns their files by model name."""
    from maas.datasets.builtin import load_builtin
    from maas.export.onnx import export_onnx
    from maas.training.spec import TrainSpec
    from maas.training.trainer import train

    data = load_builtin("digits")
    files = {}
    for name, architecture in (("digits-mlp", "mlp"), ("digits-cnn", "cnn")):
        spec = TrainSpec.model_validate({"dataset": "digits", "architecture": {"type": architecture},
                                         "hyperparameters": {"epochs": epochs, "early_stopping": None}})
        started = time.perf_counter()
        result = train(data, spec, checkpoint_path=None, device="cpu")
        files[name] = folder / f"{name}.onnx"
        export_onnx(result.serving_module, list(data.schema.input_shape), files[name])
        print(f"  trained {name}: accuracy {result.metrics.get('accuracy', 0):.3f} "
              f"in {time.perf_counter() - started:.1f} s", flush=True)
    return files


def import_models(url: str, files: dict[str, Path]) -> None:
    metadata = json.dumps({"classes": list(range(10))})
    with httpx.Client(base_url=url, timeout=60) as http:
        for name, path in files.items():
            response = http.post("/models", files={"file": (path.name, path.read_bytes())},
                                 data={"name": name, "metadata": metadata})
            response.raise_for_status()
            # The first request loads and warms the model: keep that out of the measurement.
            http.post("/predict", json={"model": name, "inputs": [ROW]}).raise_for_status()


# --- servers -----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(command: list[str], env: dict[str, str], ready_path: str, log: Path, cwd: Path = ROOT) -> Iterator[str]:
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                                   cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url + ready_path, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()[-2000:]}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"server did not come up:\n{log.read_text()[-2000:]}")


def uvicorn_command(app_dir: Path, module: str, stack: list[str]) -> list[str]:
    return [sys.executable, "-m", "uvicorn", f"{module}:app", "--app-dir", str(app_dir), "--host", "127.0.0.1",
            "--port", "{port}", "--log-level", "warning", "--no-access-log", *stack]


def maas_command(stack: list[str]) -> list[str]:
    return [sys.executable, "-m", "maas", "serve", "--host", "127.0.0.1", "--port", "{port}", "--workers", "0",
            *stack]


# --- load --------------------------------------------------------------------------------------------------
def drive(url: str, model: str, concurrency: int, seconds: int, folder: Path, rows: int = 1,
          protocol: str = "json") -> Load:
    if protocol == V2_BINARY:
        script, path = v2_binary_script(folder, model, rows), f"/v2/models/{model}/infer"
    else:
        script, path = folder / f"{model}-{rows}.lua", "/predict"
        body = json.dumps({"model": model, "inputs": [ROW] * rows}, separators=(",", ":"))
        script.write_text(LUA.format(body=body))
    threads = 1 if concurrency < 16 else 2  # wrk shares the two cores with the server: keep it lean
    output = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", str(script), url + path],
        capture_output=True, text=True, check=True).stdout
    return parse_wrk(output)


def v2_binary_script(folder: Path, model: str, rows: int) -> Path:
    """A wrk script that posts ``rows`` rows as one FP32 tensor in Triton's binary extension, outputs binary."""
    tensor = np.tile(np.asarray(ROW, dtype=np.float32), (rows, 1)).tobytes()
    header = json.dumps({
        "inputs": [{"name": "input", "shape": [rows, len(ROW)], "datatype": "FP32",
                    "parameters": {"binary_data_size": len(tensor)}}],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
    }, separators=(",", ":")).encode()
    body = folder / f"{model}-{rows}-v2.bin"
    body.write_bytes(header + tensor)
    script = folder / f"{model}-{rows}-v2.lua"
    script.write_text(LUA_BINARY.format(path=body, header_length=len(header)))
    return script


def parse_wrk(output: str) -> Load:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors:.*", output)
    failed = int(errors.group(1)) if errors else 0
    kinds = [f"non-2xx {errors.group(1)}"] if errors else []
    if socket_errors:
        failed += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(0)))
        kinds.append(socket_errors.group(0).strip())
    return Load(rps, _percentile(output, "50"), _percentile(output, "99"), failed, "; ".join(kinds))


def _percentile(output: str, which: str) -> float:
    value, unit = re.search(rf"^\s+{which}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


# --- in-process ONNX Runtime -------------------------------------------------------------------------------
def ort_samples_per_second(path: Path, batch: int, seconds: float = 2.0) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # default: all cores
    x = np.tile(np.asarray(ROW, dtype=np.float32), (batch, 1))
    for _ in range(20):
        session.run(None, {"input": x})
    runs, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        session.run(None, {"input": x})
        runs += 1
    return runs * batch / elapsed


# --- report ------------------------------------------------------------------------------------------------
def uvicorn_stack(loop: str, http: str) -> str:
    if loop == "auto":
        loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    if http == "auto":
        http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"{loop} + {http}"


def interpreter() -> str:
    """Which Python every server runs on: its build moves Python-heavy servers more than the floor (README)."""
    return f"Python {sys.version.split()[0]} at {os.path.realpath(sys.executable)}"


def print_table(results: dict[tuple[str, str, int], Load], ort_rates: dict[tuple[str, int], float]) -> None:
    print(f"\n{'server':<8} {'model':<25} {'c':>3} {'req/s':>9} {'samples/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'errors':>6}")
    for (label, model, concurrency), load in results.items():
        rows = BULK_ROWS if f"x{BULK_ROWS}" in model else 1
        print(f"{label:<8} {model:<25} {concurrency:>3} {load.rps:>9.0f} {load.rps * rows:>10.0f} "
              f"{load.p50_ms:>8.3f} {load.p99_ms:>8.2f} {load.errors:>6}")
    print(f"\n{'in-process ONNX Runtime':<28} {'batch':>5} {'samples/s':>11}")
    for (model, batch), rate in ort_rates.items():
        print(f"{model:<28} {batch:>5} {rate:>11.0f}")


def print_ratios(results: dict[tuple[str, str, int], Load], runs: dict[tuple[str, str, int], list[Load]],
                 rates: dict[tuple[str, int], list[float]]) -> None:
    """The goals' ratios, each the median of its rounds' own ratios (loads run seconds apart, see ``run``)."""
    def rps(label: str, model: str, concurrency: int, rows: int = 1) -> list[float]:
        return [load.rps * rows for load in runs[(label, model, concurrency)]]

    def ratio(numerators: list[float], denominators: list[float]) -> tuple[float, str]:
        each = [n / d for n, d in zip(numerators, denominators, strict=True)]
        return statistics.median(each), " ".join(f"{value:.2f}" for value in each)

    maas, lean, floor, naive = (rps(label, "digits-mlp", 64) for label in ("maas", "lean", "floor", "naive"))
    cnn_b64 = rates[("digits-cnn", 64)]
    bulk = f"digits-cnn x{BULK_ROWS}"
    checks = [
        ("MLP c=64 maas / naive", ratio(maas, naive), ">= 4.5x", 4.5),
        ("MLP c=64 maas / floor", ratio(maas, floor), ">= 0.75", 0.75),
        ("CNN 64-row requests / ORT b64", ratio(rps("maas", bulk, BULK_CONCURRENCY, BULK_ROWS), cnn_b64),
         ">= 0.35", 0.35),
        ("CNN 64-row V2 binary / ORT b64",
         ratio(rps("maas", f"{bulk} {V2_BINARY}", BULK_CONCURRENCY, BULK_ROWS), cnn_b64), ">= 0.35", 0.35),
        ("CNN 1-row c=64 / ORT b64 (info)", ratio(rps("maas", "digits-cnn", 64), cnn_b64), "-", 0.0),
    ]
    print("\nratios: the median of the rounds' own ratios (each round's in brackets)")
    for label, (value, each), goal, threshold in checks:
        verdict = "" if goal == "-" else ("met" if value >= threshold else "MISSED")
        print(f"{label:<32} {value:>7.3f}   goal {goal:<8} {verdict:<6}  [{each}]")  # 3 places: 0.349 is no 0.35
    p99, p50 = results[("maas", "digits-mlp", 64)].p99_ms, results[("maas", "digits-mlp", 1)].p50_ms
    print(f"{'MLP c=64 maas p99':<32} {p99:>6.2f}ms  goal < 15 ms  {'met' if p99 < 15 else 'MISSED'}")
    print(f"{'MLP c=1 maas p50':<32} {p50:>6.3f}ms  goal < 0.3 ms {'met' if p50 < 0.3 else 'MISSED'}")
    print("\nthe lean batching reference (no duties), same run; the issue quotes 5.9x naive, 0.89 of the floor:")
    for label, (value, each) in (("MLP c=64 lean / floor", ratio(lean, floor)), ("MLP c=64 lean / naive",
                                  ratio(lean, naive)), ("MLP c=64 maas / lean", ratio(maas, lean))):
        print(f"{label:<32} {value:>7.2f}  [{each}]")
    print(f"{'MLP c=64 lean p99':<32} {results[('lean', 'digits-mlp', 64)].p99_ms:>6.2f}ms")
    print(f"{'MLP c=1 lean p50':<32} {results[('lean', 'digits-mlp', 1)].p50_ms:>6.3f}ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="duration of each wrk run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of every load; medians are reported")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs of each model")
    parser.add_argument("--loop", default="auto", help="every server's event loop: auto (uvloop), asyncio, uvloop")
    parser.add_argument("--http", default="auto", help="every server's HTTP parser: auto (httptools), h11, httptools")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="also serve from this checkout of an earlier commit (git worktree add DIR REV) "
                             "and print this checkout's speed-up over it")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    folder = Path(tempfile.mkdtemp(prefix="maas-bench-"))
    try:
        run(folder, args.seconds, args.epochs, ["--loop", args.loop, "--http", args.http], args.repeats,
            args.baseline)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(folder: Path, seconds: int, epochs: int, stack: list[str], repeats: int, baseline: Path | None = None
        ) -> None:
    print(f"uvicorn stack: {uvicorn_stack(stack[1], stack[3])}; {interpreter()}; building models in {folder} "
          f"({os.cpu_count()} cores)", flush=True)
    files = build_models(folder, epochs)
    (folder / "naive_app.py").write_text(NAIVE_APP)
    (folder / "floor_app.py").write_text(FLOOR_APP)
    (folder / "lean_app.py").write_text(LEAN_APP)
    maas_env = {"MAAS_DATA_DIR": str(folder / "data"), "MAAS_WORKERS": "0", "MAAS_LOG_LEVEL": "warning"}
    baseline_env = {"BENCH_MODEL": str(files["digits-mlp"])}
    # Each MLP load's servers run back to back, so a ratio compares runs seconds apart: this VM's speed can
    # change within a round (on 2026-12-07 a round's maas loads, run first, fell in a slow minute that the
    # references, run half a minute later, missed). The CNN's loads come last, just before ORT's own rate.
    ours = ("maas", "before") if baseline is not None else ("maas",)  # "before": an earlier checkout of maas
    plan = [(label, "digits-mlp", concurrency, 1, "json") for concurrency in CONCURRENCY
            for label in (*ours, *REFERENCES)]
    plan += [(label, "digits-cnn", concurrency, 1, "json") for concurrency in CONCURRENCY for label in ours]
    plan += [(label, "digits-cnn", BULK_CONCURRENCY, BULK_ROWS, protocol) for protocol in ("json", V2_BINARY)
             for label in ours]
    runs: dict[tuple[str, str, int], list[Load]] = {}
    with ExitStack() as servers:  # all three up at once (idle ones cost nothing), so their runs can interleave
        urls = {"maas": servers.enter_context(server(maas_command(stack), maas_env, "/healthz", folder / "maas.log"))}
        for label in REFERENCES:
            urls[label] = servers.enter_context(server(uvicorn_command(folder, f"{label}_app", stack), baseline_env,
                                                       "/docs", folder / f"{label}.log"))
        import_models(urls["maas"], files)
        if baseline is not None:
            env = {**maas_env, "MAAS_DATA_DIR": str(folder / "data-before"), "PYTHONPATH": str(baseline)}
            urls["before"] = servers.enter_context(server(maas_command(stack), env, "/healthz",
                                                          folder / "before.log", cwd=baseline))
            import_models(urls["before"], files)
        rates: dict[tuple[str, int], list[float]] = {}
        for repeat in range(1, repeats + 1):
            # Interleaved: a slow spell of this shared machine hurts every server alike, not one of them.
            for label, model, concurrency, rows, protocol in plan:
                name = model if rows == 1 else f"{model} x{rows}"
                key = (label, name if protocol == "json" else f"{name} {protocol}", concurrency)
                load = drive(urls[label], model, concurrency, seconds, folder, rows, protocol)
                runs.setdefault(key, []).append(load)
                print(f"  [{repeat}/{repeats}] {label} {key[1]} c={concurrency}: {load}", flush=True)
            # The compute limit drifts with the machine like the rest: measured in every round too.
            for model, path in files.items():
                for batch in (1, 64):
                    rates.setdefault((model, batch), []).append(ort_samples_per_second(path, batch))
    if any(load.errors for (label, _, _), loads in runs.items() if label == "maas" for load in loads):
        print("maas had failed requests; the end of its log:\n" + (folder / "maas.log").read_text()[-3000:])
    results = {key: median_load(loads) for key, loads in runs.items()}
    ort_rates = {key: statistics.median(values) for key, values in rates.items()}
    print(f"\nmedians of {repeats} interleaved run(s) of {seconds} s each")
    print_table(results, ort_rates)
    print_ratios(results, runs, rates)
    if baseline is not None:
        print(f"\nthis checkout / the one at {baseline} (same loads, interleaved)")
        for (label, name, concurrency), load in results.items():
            if label == "maas":
                before = results[("before", name, concurrency)]
                print(f"  {name:<25} c={concurrency:<3} {load.rps / before.rps:>6.2f}x req/s   "
                      f"p99 {before.p99_ms:.2f} -> {load.p99_ms:.2f} ms")


def median_load(loads: list[Load]) -> Load:
    """Each figure's median over the runs; errors are added up, so one failed request anywhere shows."""
    return Load(statistics.median(x.rps for x in loads), statistics.median(x.p50_ms for x in loads),
                statistics.median(x.p99_ms for x in loads), sum(x.errors for x in loads),
                "; ".join(x.error_kinds for x in loads if x.error_kinds))


if __name__ == "__main__":
    main()
