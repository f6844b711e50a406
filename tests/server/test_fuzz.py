"""Mutated real videos and the live OpenAPI schema, thrown at a real server: never a 5xx,
never a dead or unready server. (`benchmarks/fuzz.py` runs the same with thousands.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter

import httpx
import pytest

from tests import videos
from tests.server.conftest import ServerProcess


@pytest.fixture(scope="module")
def target(tiny_checkpoint):
    srv = ServerProcess({
        "ALT_CHECKPOINT": str(tiny_checkpoint),
        "ALT_DECODE_TIMEOUT_S": "10",
        "ALT_MAX_UPLOAD_MB": "4",
    })  # fmt: skip
    yield srv
    srv.stop()


@pytest.mark.slow
def test_200_mutants_of_real_videos_never_get_a_5xx(target):
    statuses: Counter = Counter()
    failures = []
    with httpx.Client(base_url=target.url, timeout=60) as client:
        for name, kind, data in videos.mutants(240, seed=1):
            resp = client.post(
                "/recognize", content=data, headers={"content-type": "application/octet-stream"}
            )
            statuses[resp.status_code] += 1
            body = resp.json()
            if resp.status_code >= 500 or (
                resp.status_code != 200 and set(body) != {"error", "detail"}
            ):
                failures.append((name, kind, resp.status_code, resp.text[:200]))
        ready = client.get("/readyz").status_code
    assert not failures, failures[:5]
    assert target.alive and ready == 200
    assert statuses[200] > 20 and sum(v for k, v in statuses.items() if 400 <= k < 500) > 20


@pytest.mark.slow
def test_schemathesis_finds_no_5xx_and_no_answer_outside_the_schema(target):
    st = shutil.which("st", path=str(__import__("pathlib").Path(sys.executable).parent))
    if st is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    proc = subprocess.run(
        [st, "run", target.url + "/openapi.json", "--max-examples", "25", "--seed", "1",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
         "response_schema_conformance", "--request-timeout", "30", "--no-color",
             "--exclude-path-regex", "/events$"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert target.alive and httpx.get(target.url + "/readyz").status_code == 200
