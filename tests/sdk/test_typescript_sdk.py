"""The TypeScript SDK's own tests (Node's test runner) against the real server, and a check that its
generated types match the server's OpenAPI schema."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.conftest import REPO
from tests.sdk.conftest import SdkServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db]
PACKAGE = REPO / "clients" / "typescript"
NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="needs Node.js 18+")
def test_the_typescript_types_match_the_servers_schema(sdk_server: SdkServer) -> None:
    check = subprocess.run(
        [NODE, "scripts/generate-types.mjs", f"{sdk_server.url}/api/schema?format=json", "--check"],
        cwd=PACKAGE, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr


@pytest.mark.skipif(NODE is None, reason="needs Node.js 18+")
def test_the_typescript_sdk_passes_its_tests_against_the_real_server(sdk_server: SdkServer) -> None:
    env = {**os.environ, "EASYMEMORY_URL": sdk_server.url, "EASYMEMORY_TEST_KEYS": json.dumps(sdk_server.keys)}
    run = subprocess.run(
        [NODE, "--test", "--test-reporter=spec", "test/"],
        cwd=PACKAGE, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "# fail 0" in run.stdout or "fail 0" in run.stdout
