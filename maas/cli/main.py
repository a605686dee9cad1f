"""``maas``: serve, manage the database and keys, and talk to a server as a client."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from maas import __version__
from maas.cli.client import client_app
from maas.config import Settings
from maas.errors import MaasError

app = typer.Typer(help="maas: train, register and serve models over HTTP.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (run on the server machine; talks to the database directly).",
                       no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
client_app(app)
console = Console()

if TYPE_CHECKING:
    import asyncio

    from maas.api.hotpath import MaasAPI


def _version(value: bool) -> None:
    if value:
        console.print(f"maas {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False) -> None:
    """maas command line."""


@app.command()
def serve(host: Annotated[str | None, typer.Option(help="Bind address (MAAS_HOST).")] = None,
          port: Annotated[int | None, typer.Option(help="Port (MAAS_PORT).")] = None,
          workers: Annotated[int | None, typer.Option(help="Job-worker threads (MAAS_WORKERS).")] = None,
          data_dir: Annotated[Path | None, typer.Option(help="Data folder (MAAS_DATA_DIR).")] = None,
          loop: Annotated[str, typer.Option(help="Event loop: auto (uvloop when installed), asyncio, uvloop.")
                          ] = "auto",
          http: Annotated[str, typer.Option(help="HTTP parser: auto (httptools when installed), h11, httptools.")
                          ] = "auto") -> None:
    """Apply migrations and serve the API, the job workers and the inference engine."""
    from maas.app import create_app
    from maas.bootstrap import bind_is_safe, build_services, migrate
    from maas.observability.logging import configure_logging

    overrides = {k: v for k, v in {"host": host, "port": port, "workers": workers, "data_dir": data_dir}.items()
                 if v is not None}
    settings = _settings(**overrides)
    configure_logging(settings.log_level)
    services = build_services(settings)
    try:
        migrate(services)
        bind_is_safe(services)
    except MaasError as exc:
        console.print(f"[red]maas serve: {exc.message}[/red]")
        raise typer.Exit(2) from exc
    application = create_app(settings, services, run_migrations=False)
    run_server(application, settings.host, settings.port, loop=loop, http=http)


def run_server(application: MaasAPI, host: str, port: int, *, loop: str = "auto", http: str = "auto") -> None:
    """Serve ``application`` with uvicorn as ``maas serve`` does (also what the benchmarks' servers run)."""
    import uvicorn

    tune_garbage_collector()
    # No proxy-headers middleware: maas records no client addresses, and the layer costs every request (~1 us).
    # No "server: uvicorn" header either: nothing gained by advertising it.
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=30, loop=loop, http=_http_protocol(http, application),  # type: ignore[arg-type]
                proxy_headers=False, server_header=False)


def tune_garbage_collector() -> None:
    """The collector settings of a long-running server; call once everything long-lived is built."""
    import gc

    # Everything imported and built so far lives as long as the server: moved out of the collector's reach, a
    # full collection no longer walks it (measured: it was the source of 50-150 ms stalls under load).
    gc.freeze()
    # A young-generation collection every 700 allocations (the default) is several per batch of requests, and
    # each is a pause every waiting request shares: measured under wrk at c=64, p99 12.5-17.9 ms with this
    # threshold against 18.9-32.2 ms with the default (4 interleaved runs each). Most request objects die by
    # reference counting; what cycles remain wait a little longer.
    gc.set_threshold(50_000, 50, 1000)


def _http_protocol(http: str, application: MaasAPI) -> str | type[asyncio.Protocol]:
    """uvicorn's ``http=``: with httptools ("auto" when it is installed), the protocol that serves predictions
    beneath ASGI (``api/protocol.py``); else uvicorn's own choice."""
    if http not in ("auto", "httptools") or importlib.util.find_spec("httptools") is None:
        return http
    from maas.api.protocol import HotPathProtocol

    return HotPathProtocol.serving(application)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations (``maas serve`` also does this at start)."""
    from maas.bootstrap import build_services, migrate

    services = build_services(_settings())
    migrate(services)
    console.print(f"database at revision {services.db.current_revision()}")


@keys_app.command("create")
def keys_create(tenant: Annotated[str, typer.Option(help="Tenant the key acts for.")],
                scopes: Annotated[str, typer.Option(help="Comma-separated: read,predict,train,manage.")]
                = "read,predict,train,manage",
                name: Annotated[str, typer.Option(help="A label for the key.")] = "") -> None:
    """Create an API key; it is printed once."""
    services = _migrated()
    try:
        entity, key = services.keys.create(tenant, name, [s.strip() for s in scopes.split(",") if s.strip()])
    except MaasError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from exc
    console.print(f"id: {entity.id}\ntenant: {entity.tenant}\nscopes: {','.join(entity.scopes)}")
    console.print(f"key (shown once): [bold]{key}[/bold]")


@keys_app.command("list")
def keys_list(tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None) -> None:
    """List keys (never their secrets)."""
    table = Table("id", "tenant", "name", "prefix", "scopes", "created", "revoked")
    for k in _migrated().keys.list_keys(tenant):
        table.add_row(k.id, k.tenant, k.name, k.prefix, ",".join(k.scopes), k.created_at.isoformat(timespec="seconds"),
                      k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else "")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key by id."""
    try:
        _migrated().keys.revoke(key_id)
    except MaasError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from exc
    console.print(f"revoked {key_id}")


def _settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except Exception as exc:
        console.print(f"[red]Invalid settings: {exc}[/red]")
        raise typer.Exit(2) from exc


def _migrated():  # type: ignore[no-untyped-def]
    from maas.bootstrap import build_services, migrate

    services = build_services(_settings())
    migrate(services)
    return services
