"""Client commands (train, jobs, models, predict) that talk to a running server over HTTP.

They only speak the public API (httpx, the JSON shapes of DESIGN.md), so they work against any replica, local or
remote, and never touch the database. Every command takes ``--url`` (``MAAS_URL``) and ``--key``
(``MAAS_API_KEY``). An API error is printed as its one-sentence message and exits with status 1; an unreachable
server exits with status 2.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

DEFAULT_URL = "http://127.0.0.1:8000"
FINISHED = ("succeeded", "failed", "cancelled")
RECONNECTS = 30  # the events stream survives a server restart of up to ~30 s (the job resumes there)
# Live metrics shown next to the progress bar, in this order, when the epoch reports them.
SHOWN_METRICS = ("train_loss", "val_loss", "val_accuracy", "val_f1_macro", "val_r2", "val_rmse")
TEST_METRICS = ("accuracy", "f1_macro", "r2", "rmse", "mae")
FREE_TEXT_COLUMNS = ("test metrics",)
MIN_WIDTHS = {"id": 32, "status": 9, "created": 19}

console = Console()
errors = Console(stderr=True, soft_wrap=True)

UrlOption = Annotated[str, typer.Option("--url", envvar="MAAS_URL", help="Server address (MAAS_URL).")]
KeyOption = Annotated[str | None, typer.Option("--key", envvar="MAAS_API_KEY", show_default=False,
                                               help="API key (MAAS_API_KEY).")]


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class ApiClient:
    """The HTTP API with errors turned into :class:`ApiError`."""

    def __init__(self, url: str, key: str | None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def get(self, path: str, **params: Any) -> Any:
        return self._json(self.http.get(path, params=params))

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._json(self.http.post(path, json=body))

    def events(self, job_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """``/jobs/{id}/events`` as (event, data) pairs until ``end``."""
        name = ""
        with self.http.stream("GET", f"/jobs/{job_id}/events", timeout=httpx.Timeout(30, read=None)) as response:
            if response.status_code >= 400:
                response.read()
                self._json(response)
            for line in response.iter_lines():
                if line.startswith("event:"):
                    name = line.partition(":")[2].strip()
                elif line.startswith("data:"):
                    yield name, json.loads(line.partition(":")[2])
                    if name == "end":
                        return

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        body = response.json() if response.content else None
        if response.status_code >= 400:
            body = body if isinstance(body, dict) else {}
            raise ApiError(response.status_code, body.get("error") or response.reason_phrase, body.get("code", ""))
        return body


def client_app(app: typer.Typer) -> None:
    """Registers the client commands on the main app."""
    jobs_app = typer.Typer(help="Training jobs on a server.", no_args_is_help=True)
    models_app = typer.Typer(help="Registered models on a server.", no_args_is_help=True)
    app.command("train")(train)
    app.command("predict")(predict)
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(models_app, name="models")
    jobs_app.command("list")(jobs_list)
    jobs_app.command("show")(jobs_show)
    jobs_app.command("cancel")(jobs_cancel)
    models_app.command("list")(models_list)
    models_app.command("show")(models_show)


# --- commands ----------------------------------------------------------------------------------------------
def train(dataset: Annotated[str, typer.Option(help="Dataset name or id (or a built-in: digits, iris, ...).")],
          model: Annotated[str | None, typer.Option(help="Model name (default: the dataset's).")] = None,
          epochs: Annotated[int | None, typer.Option(help="Epoch budget.")] = None,
          arch: Annotated[str | None, typer.Option(help="Architecture type: auto, linear, mlp, cnn, resnet.")] = None,
          spec: Annotated[Path | None, typer.Option(help="JSON file with a full POST /train body.")] = None,
          follow: Annotated[bool, typer.Option(help="Show live progress and wait for the result.")] = False,
          url: UrlOption = DEFAULT_URL, key: KeyOption = None) -> None:
    """Submit a training job; with --follow, watch it and print the registered model version."""
    body = train_body(dataset, model, epochs, arch, spec)
    api = ApiClient(url, key)
    job = _call(lambda: api.post("/train", body))["job"]
    console.print(f"job [bold]{job['id']}[/bold] {job['status']} (training {body.get('model') or dataset})")
    if follow:
        _conclude(api, _call(lambda: follow_job(api, job)))


def jobs_list(status: Annotated[str | None, typer.Option(help="Only jobs with this status.")] = None,
              limit: Annotated[int, typer.Option(help="At most this many.")] = 20,
              url: UrlOption = DEFAULT_URL, key: KeyOption = None) -> None:
    """List jobs, newest first (``maas jobs show ID`` has the error and the history)."""
    params = {"limit": limit, **({"status": status} if status else {})}
    page = _call(lambda: ApiClient(url, key).get("/jobs", **params))
    table = _table("id", "status", "model", "epoch", "attempts")
    for job in page["items"]:
        table.add_row(job["id"], job["status"], _model_of(job), _epoch_of(job), str(job["attempts"]))
    console.print(table)


def jobs_show(job_id: str, url: UrlOption = DEFAULT_URL, key: KeyOption = None) -> None:
    """One job: status, result and per-epoch history."""
    job = _call(lambda: ApiClient(url, key).get(f"/jobs/{job_id}"))
    console.print(f"job {job['id']}  [bold]{job['status']}[/bold]  epoch {_epoch_of(job)}  "
                  f"attempts {job['attempts']}  model {_model_of(job)}")
    if job["error"]:
        console.print(f"error: {job['error']}")
    if job["history"]:
        columns = [c for c in ("epoch", *SHOWN_METRICS, "seconds") if c in job["history"][-1]]
        table = _table(*columns)
        for entry in job["history"]:
            table.add_row(*(_number(entry.get(c)) for c in columns))
        console.print(table)


def jobs_cancel(job_id: str, url: UrlOption = DEFAULT_URL, key: KeyOption = None) -> None:
    """Cancel a queued or running job."""
    job = _call(lambda: ApiClient(url, key).post(f"/jobs/{job_id}/cancel", {}))
    state = "cancel requested" if job["status"] == "running" else job["status"]
    console.print(f"job {job['id']}: {state}")


def models_list(url: UrlOption = DEFAULT_URL, key: KeyOption = None) -> None:
    """List registered models."""
    page = _call(lambda: ApiClient(url, key).get("/models", limit=200))
    table = _table("name", "task", "latest", "aliases", "created")
    for m in page["items"]:
        aliases = ", ".join(f"{a}->{v}" for a, v in sorted((m.get("aliases") or {}).items()))
        table.add_row(m["name"], m["task"], str(m.get("latest_version") or ""), aliases, _when(m["created_at"]))
    console.print(table)


def models_show(name: str, url: UrlOption = DEFAULT_URL, key: KeyOption = None) -> None:
    """One model and its versions with their test metrics and artifacts."""
    api = ApiClient(url, key)
    model = _call(lambda: api.get(f"/models/{name}"))
    versions = _call(lambda: api.get(f"/models/{name}/versions", limit=200))
    console.print(f"[bold]{model['name']}[/bold] ({model['task']})  {model.get('description') or ''}")
    table = _table("version", "aliases", "artifacts", "test metrics")
    for v in versions["items"]:
        table.add_row(str(v["version"]), ", ".join(v["aliases"]), ", ".join(a["kind"] for a in v["artifacts"]),
                      _metrics_line(v["metrics"], TEST_METRICS))
    console.print(table)


def predict(model: Annotated[str, typer.Option(help="Model name.")],
            input_json: Annotated[str, typer.Option("--input", help="JSON inputs, e.g. '[[5.1, 3.5, 1.4, 0.2]]'.")],
            version: Annotated[str | None, typer.Option(help="Version number or alias (default: production, "
                                                                "else latest).")] = None,
            url: UrlOption = DEFAULT_URL, key: KeyOption = None) -> None:
    """Send inputs to POST /predict and print the predictions."""
    try:
        inputs = json.loads(input_json)
    except json.JSONDecodeError as exc:
        _fail(f"--input is not valid JSON: {exc}", 2)
    body: dict[str, Any] = {"model": model, "inputs": inputs}
    if version is not None:
        body["version"] = int(version) if version.isascii() and version.isdigit() else version
    console.print_json(data=_call(lambda: ApiClient(url, key).post("/predict", body)))


# --- train: the body and the follow loop -------------------------------------------------------------------
def train_body(dataset: str, model: str | None, epochs: int | None, arch: str | None,
               spec: Path | None) -> dict[str, Any]:
    """The ``--spec`` file (if any) with the flags on top: a flag always wins over the file."""
    body: dict[str, Any] = _read_spec(spec) if spec else {}
    body["dataset"] = dataset
    if model:
        body["model"] = model
    if epochs is not None:
        body["hyperparameters"] = {**body.get("hyperparameters", {}), "epochs": epochs}
    if arch:
        body["architecture"] = {**body.get("architecture", {}), "type": arch}
    return body


def _read_spec(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        _fail(f"cannot read the spec file {path}: {exc}", 2)
    if not isinstance(loaded, dict):
        _fail(f"the spec file {path} must hold a JSON object (a POST /train body)", 2)
    return loaded


def follow_job(api: ApiClient, job: dict[str, Any]) -> dict[str, Any]:
    """Render the job's events as a progress bar until it ends; returns the final job."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[metrics]}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task(f"{job['id'][:8]} {job['status']}", total=None, metrics="")
        for reconnects in range(RECONNECTS + 1):
            try:
                job = _render_events(api, job, progress, bar)
                break
            except httpx.TransportError:
                if reconnects == RECONNECTS:
                    raise
                progress.update(bar, description=f"{job['id'][:8]} reconnecting")
                time.sleep(1)
    return job


def _render_events(api: ApiClient, job: dict[str, Any], progress: Progress, bar: Any) -> dict[str, Any]:
    for name, data in api.events(job["id"]):
        if name == "progress":
            job = data
            state = job["progress"]
            progress.update(bar, description=f"{job['id'][:8]} {job['status']}", total=state.get("epochs"),
                            completed=state.get("epoch") or 0, metrics=_metrics_line(state, SHOWN_METRICS))
    return job


def _conclude(api: ApiClient, job: dict[str, Any]) -> None:
    if job["status"] != "succeeded" or not job.get("model"):
        _fail(f"job {job['id']} {job['status']}: {job['error'] or 'no error recorded'}", 1)
    name, number = job["model"]["name"], job["model"]["version"]
    version = _call(lambda: api.get(f"/models/{name}/versions/{number}"))
    console.print(f"registered [bold]{name}[/bold] version {number}: {_metrics_line(version['metrics'], TEST_METRICS)}")


# --- rendering and errors ----------------------------------------------------------------------------------
def _table(*columns: str) -> Table:
    """Borderless, one line per row. Identifiers and short values keep their width (users copy ids into the
    next command); free text is cut with an ellipsis when the terminal is narrow."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for name in columns:
        if name in FREE_TEXT_COLUMNS:
            table.add_column(name, no_wrap=True, overflow="ellipsis", max_width=60)
        else:
            table.add_column(name, no_wrap=True, min_width=MIN_WIDTHS.get(name, len(name)))
    return table


def _when(timestamp: str | None) -> str:
    return (timestamp or "")[:19].replace("T", " ")


def _metrics_line(metrics: dict[str, Any], keys: tuple[str, ...]) -> str:
    return "  ".join(f"{k} {_number(metrics[k])}" for k in keys if metrics.get(k) is not None)


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _model_of(job: dict[str, Any]) -> str:
    model = job.get("model")
    return f"{model['name']} v{model['version']}" if model else job["spec"].get("model", "")


def _epoch_of(job: dict[str, Any]) -> str:
    state = job["progress"]
    return f"{state.get('epoch') or 0}/{state.get('epochs') or '?'}"


def _call(request: Any) -> Any:
    """Run one API call; an API error or an unreachable server ends the command with its message."""
    try:
        return request()
    except ApiError as exc:
        _fail(f"error ({exc.status} {exc.code}): {exc.message}", 1)
    except httpx.TransportError as exc:
        _fail(f"cannot reach the server: {exc}", 2)


def _fail(message: str, code: int) -> NoReturn:
    errors.print(message, markup=False, highlight=False)
    raise typer.Exit(code)
