"""Instructions per ``POST /predict``, counted by callgrind: maas against the HTTP floor and the lean reference.

Throughput on this shared 2-core VM drifts by +-25% within an hour (README, Performance), so an A/B of a change
worth a few percent drowns in it. This counts work instead of timing it: each server's real HTTP protocol
(uvicorn's httptools protocol; for maas, ``api/protocol.HotPathProtocol`` and everything behind it) is fed
the same request bytes as wrk sends, over 64 in-memory connections (a transport that hands each answer back
to its client, which sends the next request on the loop's next turn), and valgrind's callgrind counts the
instructions the whole process executes. Two runs with different request counts are subtracted, so start-up
and model loading cancel out and what is left is the cost of one request, syscalls excepted: with the same
code and inputs the count repeats to within ~0.5%.

Three servers in the same harness, as in ``bench_serve.py``: the floor (a bare uvicorn ASGI app that parses
the body with orjson and answers a constant), the lean batching reference (no duties), and ``maas serve``'s
app with the digits MLP imported. The ratio floor / maas is what the floor ratio of ``bench_serve.py`` would
be if every instruction cost the same and the kernel's part of a request were nothing; it is a guide, not
that goal (on 2026-12-07 the kernel's part over loopback was ~10 us a request for maas and ~15 for the floor,
and maas's instructions ran slower than the floor's). Use it to compare checkouts: ``--checkout DIR`` (a
``git worktree`` of another commit) counts maas there too.

Run: ``.venv/bin/python scripts/bench_instructions.py`` (~15 min on 2 cores: valgrind runs the interpreter
~50x slower, two runs at a time); ``--time`` runs the same harness without valgrind and prints microseconds a
request instead (seconds, and noisy like any timing here). Needs valgrind (Debian's package).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_serve  # a sibling script: its models and reference apps
from bench_hot_path import run_loop  # maas serve's event loop: uvloop when installed

MODEL = "digits-mlp"
SERVERS = ("floor", "lean", "maas")
CONNECTIONS = 64
FEW, MANY = 50, 250  # requests a connection in the two counted runs; their difference is 12,800 requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", type=Path, help="also count maas from this checkout (git worktree add DIR REV)")
    parser.add_argument("--time", action="store_true", help="time the harness instead (no valgrind)")
    parser.add_argument("--drive", choices=SERVERS, help=argparse.SUPPRESS)  # one run, in a subprocess
    parser.add_argument("--requests", type=int, default=1000, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        run_loop(drive(args.drive, args.model, args.requests, rounds=3 if args.time else 1))
        return
    if not args.time and shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    folder = Path(tempfile.mkdtemp(prefix="maas-instructions-"))
    try:
        print(f"{bench_serve.interpreter()}; building the digits MLP in {folder}", flush=True)
        model = bench_serve.build_models(folder, epochs=2)[MODEL]
        runs: list[tuple[str, str | None]] = [(server, None) for server in SERVERS]
        if args.checkout is not None:
            runs.append(("maas", str(args.checkout.resolve())))
        if args.time:
            for server, checkout in runs:
                print(f"{label(server, checkout)}:", flush=True)
                subprocess.run(command(server, model, 1000), env=environment(checkout), check=True)
        else:
            count(runs, model, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def label(server: str, checkout: str | None) -> str:
    return server if checkout is None else f"maas at {checkout}"


def command(server: str, model: Path, requests: int) -> list[str]:
    return [sys.executable, __file__, "--drive", server, "--model", str(model), "--requests", str(requests)]


def environment(checkout: str | None) -> dict[str, str]:
    env = {**os.environ, "MAAS_LOG_LEVEL": "warning"}
    if checkout is not None:
        env["PYTHONPATH"] = checkout
    return env


def count(runs: list[tuple[str, str | None]], model: Path, folder: Path) -> None:
    def instructions(job: tuple[str, str | None, int]) -> int:
        server, checkout, requests = job
        out = folder / f"callgrind-{server}-{abs(hash(checkout))}-{requests}"
        done = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                               *command(server, model, requests)], env=environment(checkout),
                              capture_output=True, text=True, check=True)
        return int(re.search(r"Collected : (\d+)", done.stderr).group(1))  # type: ignore[union-attr]

    jobs = [(server, checkout, n) for server, checkout in runs for n in (FEW, MANY)]
    started = time.monotonic()
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:  # valgrind runs one thread at a time: one per core
        totals = dict(zip(jobs, pool.map(instructions, jobs), strict=True))
    print(f"counted in {time.monotonic() - started:.0f} s\n")
    per_request = {(server, checkout): (totals[(server, checkout, MANY)] - totals[(server, checkout, FEW)])
                   / ((MANY - FEW) * CONNECTIONS) for server, checkout in runs}
    print(f"POST /predict, one 64-float row of the digits MLP, {CONNECTIONS} in-memory connections "
          f"(no syscalls): instructions a request")
    for (server, checkout), value in per_request.items():
        print(f"  {label(server, checkout):<40} {value:>10,.0f}")
    maas = per_request[("maas", None)]
    print(f"\nfloor / maas {per_request[('floor', None)] / maas:.3f}   lean / maas "
          f"{per_request[('lean', None)] / maas:.3f}   (instructions; the wrk goal is req/s, see the docstring)")
    if ("maas", runs[-1][1]) in per_request and runs[-1][1] is not None:
        other = per_request[("maas", runs[-1][1])]
        print(f"this checkout / {runs[-1][1]}: {maas / other:.3f} of its instructions ({maas - other:+,.0f} a request)")


# --- one run: a server's protocol fed over in-memory connections ---------------------------------------
class MemoryTransport(asyncio.Transport):
    """What the protocol writes to goes straight back to its client; nothing else a socket does."""

    def __init__(self, client: Client) -> None:
        super().__init__()
        self._client = client
        self._closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._client.received(bytes(data))

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self._closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Client:
    """One keep-alive connection that sends ``request`` again as soon as the answer to the last one is in."""

    def __init__(self, protocol: Any, request: bytes, loop: asyncio.AbstractEventLoop) -> None:
        self.protocol = protocol
        self._request = request
        self._loop = loop
        self._left = 0
        self._done: asyncio.Future[None] = loop.create_future()
        protocol.connection_made(MemoryTransport(self))

    def run(self, requests: int) -> asyncio.Future[None]:
        self._left = requests
        self._done = self._loop.create_future()
        self._loop.call_soon(self.protocol.data_received, self._request)
        return self._done

    def received(self, data: bytes) -> None:
        if data.startswith(b"HTTP/1.1 "):
            if not data.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"the server answered {data[:300]!r}")
            if data.endswith(b"\r\n\r\n"):
                return  # uvicorn's ASGI path writes the head of an answer and its body apart: wait for the body
        self._left -= 1
        if self._left > 0:
            self._loop.call_soon(self.protocol.data_received, self._request)
        else:
            self._done.set_result(None)


async def drive(server: str, model: Path, requests: int, rounds: int) -> None:
    from uvicorn.config import Config
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    body = json.dumps({"model": MODEL, "inputs": [bench_serve.ROW]}, separators=(",", ":")).encode()
    request = (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    loop = asyncio.get_running_loop()
    options: dict[str, Any] = {"log_level": "warning", "access_log": False, "lifespan": "off"}
    async with _app(server, model, loop) as app:
        if server == "maas":
            from maas.api.protocol import HotPathProtocol
            from maas.cli.main import tune_garbage_collector

            protocol: Any = HotPathProtocol.serving(app)
            config = Config(app=app, proxy_headers=False, server_header=False, **options)  # as maas serve does
        else:
            protocol, config = HttpToolsProtocol, Config(app=app, **options)
        config.load()
        state = ServerState()
        clients = [Client(protocol(config=config, server_state=state, app_state={}, _loop=loop), request, loop)
                   for _ in range(CONNECTIONS)]
        await asyncio.gather(*(c.run(20) for c in clients))  # warm: the model's first batches, the caches
        if server == "maas":
            tune_garbage_collector()  # as maas serve does, once everything long-lived is built
        for _ in range(rounds):
            started = time.perf_counter()
            await asyncio.gather(*(c.run(requests) for c in clients))
            elapsed = time.perf_counter() - started
            print(f"  {server}: {elapsed / (requests * CONNECTIONS) * 1e6:.2f} us a request", flush=True)
        for client in clients:
            client.protocol.connection_lost(None)


@contextlib.asynccontextmanager
async def _app(server: str, model: Path, loop: asyncio.AbstractEventLoop) -> AsyncIterator[Any]:
    """The server's ASGI app, started: maas with the model imported, or a reference app."""
    if server != "maas":
        os.environ["BENCH_MODEL"] = str(model)
        namespace: dict[str, Any] = {}
        exec(bench_serve.FLOOR_APP if server == "floor" else bench_serve.LEAN_APP, namespace)
        if server == "lean":  # what its lifespan handler does
            namespace["ready"] = asyncio.Event()
            consumer = loop.create_task(namespace["consume"]())
        yield namespace["app"]
        if server == "lean":
            consumer.cancel()
        return
    import httpx

    from maas.app import create_app
    from maas.config import Settings

    app = create_app(Settings(data_dir=Path(tempfile.mkdtemp(prefix="maas-instructions-data-")), workers=0))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
            response = await http.post("/models", files={"file": ("m.onnx", model.read_bytes())},
                                       data={"name": MODEL, "metadata": json.dumps({"classes": list(range(10))})})
            response.raise_for_status()
        yield app


if __name__ == "__main__":
    main()
