"""A schemathesis run against /openapi.json of a real server finds no 500."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import ADMIN_EMAIL, ADMIN_PASSWORD, bearer
from tests.servers import running_server


# Its own limit, not the suite's 120 s: ~30 s of CPU alone, several times that when
# the machine is shared (its subprocess waits up to 600 s too).
@pytest.mark.timeout(600)
def test_no_server_errors_under_schemathesis(tmp_path: Path) -> None:
    env = {"ADMIN_PASSWORD": ADMIN_PASSWORD, "ADMIN_EMAIL": ADMIN_EMAIL, "RATE_LIMIT_AUTH": "0",
           "LOG_LEVEL": "warning"}  # fmt: skip
    with running_server(tmp_path, env) as server:
        token = httpx.post(
            f"{server.base_url}/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        ).json()["token"]
        headers = bearer(token)
        httpx.post(
            f"{server.base_url}/schemas",
            headers=headers,
            json={"collectionName": "posts", "schema": {"fields": {"title": {"type": "String"}}}},
        ).raise_for_status()
        config = tmp_path / "schemathesis.toml"
        # Point {collection} at a real collection so that fuzzing reaches the items logic.
        config.write_text('[parameters]\n"path.collection" = "posts"\n')
        st = shutil.which("st", path=str(Path(sys.executable).parent))
        assert st is not None, "schemathesis is a dev dependency"
        result = subprocess.run(
            [
                st,
                "--config-file",
                str(config),
                "run",
                f"{server.base_url}/openapi.json",
                "--checks",
                "not_a_server_error",
                "--header",
                f"Authorization: Bearer {token}",
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                "25",
                "--exclude-path",
                "/auth/logout",  # would revoke the token under test
                "--exclude-name",
                "DELETE /schemas/{collection}",  # would drop the collection under test
                "--workers",
                "1",
                "--seed",
                "1",
                "--no-color",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        report = result.stdout[-4000:] + result.stderr[-2000:]
        assert result.returncode == 0, report
        assert "passed" in result.stdout, report
        assert "Traceback" not in server.output(), server.output()[-4000:]
