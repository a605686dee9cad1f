"""Where a small prediction's time goes over real HTTP: the hot path served in stages, each measured with wrk.

In-process timings of the steps of ``POST /predict`` (one 64-float row of the digits MLP) add up to about half
of what a request costs over sockets, and samplers attribute time to the syscalls they interrupt, so this
measures the only way that holds: whole servers, each doing one more step of the real handler than the one
before, driven the same way (wrk, 64 connections, interleaved rounds, medians). The difference between two
stages is what that step costs a request over HTTP. Stages, each including the ones above it:

- ``floor``: the serving issue's HTTP floor (a bare uvicorn ASGI app that parses the body with orjson and answers
  a constant), from ``bench_serve.py``.
- ``protocol``: ``maas serve``'s HTTP layer (``api/protocol.py``) parsing the body with orjson and answering a
  constant: no request id, metrics, keys or model.
- ``answer``: ``HotPath.answer`` around a handler that answers a constant (request id, HTTP metrics).
- ``auth+json``: the handler authenticates the key and parses the body as ``/predict`` does.
- ``resolve``: it also resolves the model's version (the cached alias map) and records the inference metrics.
- ``decode``: it also decodes ``inputs`` to float32 and validates them.
- ``infer``: it also runs them through the model's batcher and ONNX Runtime (the answer is still a constant).
- ``awaited``: the real ``/predict`` handler (postprocessing and the JSON answer added), awaited in a task per
  request, as every stage above: ``HotPath.answer``.
- ``maas``: the real ``/predict`` as ``maas serve`` answers it, by callback without a task (``HotPath.start``).

``--in-process`` measures the real handler without sockets instead: 64 clients on one event loop call
``HotPath.start`` (what ``api/protocol.py`` calls once a body is in) with the same request and wait for its
reply, so the cost of maas's own work shows without the HTTP layer and with far less noise than a server on
this shared VM; to compare two checkouts, run it with ``PYTHONPATH=<the other checkout>`` too.

Run: ``.venv/bin/python scripts/bench_hot_path.py`` (~3 min) or ``... --in-process`` (~30 s). ``--serve STAGE
--port P`` is the script serving one stage (what the benchmark starts in a subprocess).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_serve  # a sibling script: its models, servers and wrk driver

STAGES = ("floor", "protocol", "answer", "auth+json", "resolve", "decode", "infer", "awaited", "maas")
MODEL = "digits-mlp"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=4, help="duration of each wrk run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--in-process", action="store_true", help="the handler without sockets (see above)")
    parser.add_argument("--serve", choices=STAGES[1:-1], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    if not args.in_process and shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    folder = Path(tempfile.mkdtemp(prefix="maas-hot-path-"))
    try:
        if args.in_process:
            run_loop(in_process(folder, args.concurrency, args.repeats))
        else:
            run(folder, args.seconds, args.repeats, args.concurrency)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(folder: Path, seconds: int, repeats: int, concurrency: int) -> None:
    stack = ["--loop", "auto", "--http", "auto"]
    print(f"uvicorn stack: {bench_serve.uvicorn_stack('auto', 'auto')}; {bench_serve.interpreter()}; "
          f"{os.cpu_count()} cores", flush=True)
    files = bench_serve.build_models(folder, epochs=2)
    (folder / "floor_app.py").write_text(bench_serve.FLOOR_APP)
    env = {"MAAS_DATA_DIR": str(folder / "data"), "MAAS_WORKERS": "0", "MAAS_LOG_LEVEL": "warning"}
    rates: dict[str, list[float]] = {}
    with ExitStack() as servers:
        # The real server registers the model; the stage servers share its data directory (and warm up on their
        # first request below).
        urls = {"maas": servers.enter_context(bench_serve.server(bench_serve.maas_command(stack), env, "/healthz",
                                                                 folder / "maas.log"))}
        bench_serve.import_models(urls["maas"], {MODEL: files[MODEL]})
        urls["floor"] = servers.enter_context(bench_serve.server(
            bench_serve.uvicorn_command(folder, "floor_app", stack), {}, "/docs", folder / "floor.log"))
        for stage in STAGES[1:-1]:
            command = [sys.executable, __file__, "--serve", stage, "--port", "{port}"]
            urls[stage] = servers.enter_context(bench_serve.server(command, env, "/healthz",
                                                                   folder / f"{stage}.log"))
        for url in urls.values():  # the first request loads and warms the model: not part of any round
            httpx.post(url + "/predict", json={"model": MODEL, "inputs": [bench_serve.ROW]}, timeout=60)
        for round_ in range(1, repeats + 1):
            for stage in STAGES:
                load = bench_serve.drive(urls[stage], MODEL, concurrency, seconds, folder)
                rates.setdefault(stage, []).append(load.rps)
                print(f"  [{round_}/{repeats}] {stage:<10} {load}", flush=True)
    print(f"\nPOST /predict, one 64-float row of the digits MLP, wrk at {concurrency} connections; "
          f"medians of {repeats} interleaved runs of {seconds} s")
    print(f"{'stage':<10} {'req/s':>8} {'us/request':>11} {'step adds':>10}")
    before = None
    for stage in STAGES:
        rps = statistics.median(rates[stage])
        cost = 1e6 / rps
        step = "" if before is None or stage == "protocol" else f"{cost - before:+.1f}"
        print(f"{stage:<10} {rps:>8.0f} {cost:>11.1f} {step:>10}")
        before = cost
    floor, maas = statistics.median(rates["floor"]), statistics.median(rates["maas"])
    print(f"\nmaas / floor {maas / floor:.2f}; maas's HTTP layer with a constant answer / floor "
          f"{statistics.median(rates['protocol']) / floor:.2f}")


def run_loop(main: Any) -> None:
    """``main`` on the event loop ``maas serve`` picks by default: uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


# --- in-process ---------------------------------------------------------------------------------------------
async def in_process(folder: Path, clients: int, repeats: int, requests: int = 1000) -> None:
    import maas
    from maas.api import raw
    from maas.app import create_app
    from maas.cli.main import tune_garbage_collector
    from maas.config import Settings

    print(f"maas from {Path(maas.__file__).parent}; {clients} clients x {requests} requests a round", flush=True)
    files = bench_serve.build_models(folder, epochs=2)
    app = create_app(Settings(data_dir=folder / "data", workers=0))
    body = json.dumps({"model": MODEL, "inputs": [bench_serve.ROW]}).encode()
    headers = {b"host": b"bench", b"content-type": b"application/json", b"content-length": b"%d" % len(body)}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=60) as http:
            response = await http.post("/models", files={"file": ("m.onnx", files[MODEL].read_bytes())},
                                       data={"name": MODEL, "metadata": json.dumps({"classes": list(range(10))})})
            response.raise_for_status()
        hot = app.hot_path
        assert hot is not None
        route = hot.route_for("/predict", {})
        assert route is not None

        loop = asyncio.get_running_loop()

        async def client(count: int) -> None:
            for _ in range(count):
                scope = {"type": "http", "method": "POST", "path": "/predict", "app": app, "state": {},
                         "headers": list(headers.items()), "route": route}
                replied: asyncio.Future[raw.Answer] = loop.create_future()
                if hot.start(route, scope, dict(headers), body, replied.set_result) is None:  # resolve or load
                    replied.set_result(await hot.answer(route, scope, dict(headers), body))
                answer = await replied
                if answer.status != 200:
                    raise RuntimeError(answer.body.decode())

        await asyncio.gather(*(client(100) for _ in range(clients)))  # loads and warms the model
        tune_garbage_collector()  # as maas serve does
        costs = []
        for round_ in range(1, repeats + 1):
            started = time.perf_counter()
            await asyncio.gather(*(client(requests) for _ in range(clients)))
            costs.append((time.perf_counter() - started) / (clients * requests) * 1e6)
            print(f"  [{round_}/{repeats}] {costs[-1]:.2f} us a request", flush=True)
    print(f"\nPOST /predict's handler in-process, one 64-float row of the digits MLP, {clients} clients: "
          f"median {statistics.median(costs):.2f} us a request")


# --- one stage, served -------------------------------------------------------------------------------------
def serve(stage: str, port: int) -> None:
    import orjson

    from maas.api import raw
    from maas.api.routes import predict
    from maas.app import create_app
    from maas.cli.main import run_server
    from maas.inference.codecs import decode_rows

    app = create_app()
    hot = app.hot_path
    assert hot is not None
    constant = b'{"ok":true}'

    async def bare(route: Any, scope: Any, headers: Any, body: bytes) -> raw.Answer:
        orjson.loads(body)
        return raw.Answer(constant)

    async def handler(request: raw.RawRequest) -> raw.Answer:
        if stage == "answer":
            return raw.Answer(constant)
        timing = raw.Timing(request.services)
        engine = raw.engine_of(request.services)
        principal = raw.authorize(request, "predict")
        body = raw.json_object(request)
        if stage == "auth+json":
            return raw.Answer(constant)
        name = request.path_params.get("name") or predict._model_name(body)
        ref = raw.version_ref(body.get("version"))
        servable = engine.resolved(principal.tenant, name, ref) or await engine.resolve(principal.tenant, name, ref)
        timing.servable = servable
        if stage != "resolve":
            x = decode_rows(predict._inputs(body), servable.input_shape, servable.feature_names)
            if stage == "infer":
                await engine.infer(servable, None, x)
        return timing.finish(raw.Answer(constant))

    if stage == "protocol":
        hot.answer = bare  # type: ignore[method-assign]
    for route in hot._exact.values():
        route.endpoint.start = None  # type: ignore[attr-defined]  # awaited in a task: HotPath.answer
        if stage != "awaited":
            route.endpoint.handler = handler  # type: ignore[attr-defined]
    run_server(app, "127.0.0.1", port)  # maas serve's uvicorn settings and collector tuning


if __name__ == "__main__":
    main()
