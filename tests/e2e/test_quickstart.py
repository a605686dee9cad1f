"""The README's curl walk-through (scripts/quickstart.sh) runs unchanged against a real server."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "quickstart.sh"


def test_quickstart_script(server: Server) -> None:
    result = subprocess.run(["bash", str(SCRIPT)], env={**os.environ, "MAAS_URL": server.url},
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "quickstart: all steps succeeded" in result.stdout
    assert '"predictions"' in result.stdout and "setosa" in result.stdout


def test_readme_shows_the_script_commands() -> None:
    readme = (SCRIPT.parents[1] / "README.md").read_text()
    for snippet in ("make serve", "make test", '{"name": "iris", "builtin": "iris"}', "/train", "/predict",
                    "/v2/models/iris/infer", "aliases/production", "models/iris/serving"):
        assert snippet in readme, snippet
