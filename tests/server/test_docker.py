"""The slim image built and run by a real Docker engine, through compose, answering as the
local server does. Where no engine is reachable, this skips and says why."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from export.onnx_export import export_onnx
from tests.server.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
BASE = "alt-base:bookworm"  # Debian from Debian's mirror: Docker Hub is not needed
CA = Path("/etc/ssl/certs/ca-certificates.crt")
pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _docker() -> str | None:
    """A docker client with BuildKit built in (Debian's), talking to a running engine."""
    for path in ("/usr/bin/docker", shutil.which("docker")):
        if path and os.path.exists(path):
            ok = subprocess.run([path, "info"], capture_output=True).returncode == 0
            return path if ok else None
    return None


DOCKER = _docker()


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, **kw)
    assert proc.returncode == 0, f"{' '.join(args)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def slim_image(tmp_path_factory):
    if DOCKER is None:
        pytest.skip("no Docker engine is reachable (.ci/run installs docker.io and starts it)")
    if subprocess.run([DOCKER, "image", "inspect", BASE], capture_output=True).returncode:
        if shutil.which("debootstrap") is None:
            pytest.skip("no base image and no debootstrap to make one")
        root = tmp_path_factory.mktemp("debian") / "root"
        run(
            "debootstrap",
            "--variant=minbase",
            "bookworm",
            str(root),
            "http://deb.debian.org/debian",
        )
        subprocess.run(f"tar -C {root} -c . | {DOCKER} import - {BASE}", shell=True, check=True,
                       capture_output=True)  # fmt: skip
    secret = ["--secret", f"id=pipcert,src={CA}"] if CA.is_file() else []
    run(DOCKER, "build", "-f", "docker/Dockerfile.slim", "--build-arg", f"BASE={BASE}",
        *secret, "-t", "alt-serve:slim", ".", env={**os.environ, "DOCKER_BUILDKIT": "1"})  # fmt: skip
    return "alt-serve:slim"


def test_slim_image_serves_an_export_through_compose_like_the_local_server(
    slim_image, tiny_checkpoint, tmp_path, client, video_dir
):
    export = tmp_path / "onnx"
    export_onnx(tiny_checkpoint, export)
    for p in [tmp_path, *export.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)  # readable by the image's non-root user
    port = free_port()
    env = {**os.environ, "ALT_ONNX_EXPORT": str(export), "ALT_HOST_PORT": str(port)}
    compose = ["docker-compose", "-p", "alttest", "-f", "compose.yaml", "--profile", "slim"]
    if shutil.which("docker-compose") is None:
        compose = [DOCKER, "compose", *compose[1:]]
    run(*compose, "up", "-d", "--no-build", "alt-slim", env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        data = (video_dir / "clip0.mp4").read_bytes()
        params = {"labels": "surfing,kicking a ball,knitting", "top_k": 3}
        headers = {"content-type": "video/mp4"}
        ours = httpx.post(url + "/recognize", content=data, params=params, headers=headers,
                          timeout=60).json()  # fmt: skip
        ref = client.post("/recognize", content=data, params=params, headers=headers).json()
        assert [a["label"] for a in ours["actions"]] == [a["label"] for a in ref["actions"]]
        assert all(
            abs(a["score"] - b["score"]) < 1e-4 for a, b in zip(ours["actions"], ref["actions"])
        )
        assert ours["model"]["backend"] == "onnxruntime"
        container = run(*compose, "ps", "-q", "alt-slim", env=env).stdout.strip()
        assert run(DOCKER, "exec", container, "id", "-u").stdout.strip() != "0"
    finally:
        subprocess.run([*compose, "down"], capture_output=True, env=env, cwd=ROOT)
