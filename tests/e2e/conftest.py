"""A real ``maas serve`` subprocess on a free port, with its own data folder and database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)  # type: ignore[arg-type]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(data_dir: Path, database_url: str | None = None, port: int | None = None,
                 **env_overrides: str) -> Server:
    port = port or free_port()
    env = {**os.environ, "MAAS_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", **env_overrides}
    if database_url:
        env["MAAS_DATABASE_URL"] = database_url
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / f"server-{port}.log"
    process = subprocess.Popen([sys.executable, "-m", "maas", "serve", "--host", "127.0.0.1", "--port", str(port)],
                               env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    server = Server(url=f"http://127.0.0.1:{port}", data_dir=data_dir, env=env, process=process, log=log)
    wait_ready(server)
    return server


def wait_ready(server: Server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"maas serve exited early:\n{server.log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"maas serve did not become ready:\n{server.log.read_text()[-3000:]}")


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def factory(**kwargs: object) -> Server:
        kwargs.setdefault("data_dir", tmp_path / "data")
        server = start_server(**kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def server(launch: Callable[..., Server]) -> Server:
    return launch()
