from __future__ import annotations

from typing import Any, Literal

from maas.api.schemas.common import iso, page_meta
from maas.registry.entities import Job, Page
from maas.training.spec import TrainSpec


class JobSubmit(TrainSpec):
    """``POST /jobs``'s body, for the OpenAPI document: a train spec with its kind (only ``train`` so far)."""

    kind: Literal["train"] = "train"


def job_public(j: Job) -> dict[str, Any]:
    progress = {"epoch": j.progress.get("epoch", 0), "epochs": j.progress.get("epochs"), **j.progress}
    model = {"name": j.result_model, "version": j.result_version} if j.result_model else None
    return {"id": j.id, "kind": j.kind, "status": j.status, "spec": j.spec, "progress": progress,
            "history": j.history, "error": j.error, "attempts": j.attempts, "model": model,
            "cancel_requested": j.cancel_requested, "created_at": iso(j.created_at),
            "started_at": iso(j.started_at), "finished_at": iso(j.finished_at)}


def job_list(page: Page) -> dict[str, Any]:
    return {"items": [job_public(j) for j in page.items], **page_meta(page)}
