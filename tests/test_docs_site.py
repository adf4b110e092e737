"""The documentation site builds with --strict (no broken link, no page left out of the nav),
and its API reference is rendered from the server's own OpenAPI schema."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_site_builds_strictly_with_the_api_reference_from_the_schema(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"} | {"NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--quiet", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    reference = (tmp_path / "site" / "api-reference" / "index.html").read_text(encoding="utf-8")
    assert "POST /v1/search" in reference and "SearchRequest" in reference
    assert (tmp_path / "site" / "configuration" / "index.html").exists()
