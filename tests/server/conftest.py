"""A real server on loopback over a tiny checkpoint, and real video files."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(
        self, env: dict[str, str], args: tuple[str, ...] = (), ready_s: float = 90
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        path = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self._own_jobs = None if env.get("ALT_JOBS_DIR") else tempfile.mkdtemp(prefix="alt-jobs-")
        jobs = env.get("ALT_JOBS_DIR") or self._own_jobs
        full_env = {**os.environ, "ALT_JOBS_DIR": jobs, **env, "PYTHONPATH": path}
        # The log goes to a file: a pipe nobody reads fills after 64 KB of access log and
        # then blocks the server on its next log line.
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - lives with the server
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), *args],
            env=full_env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.time() + ready_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"server exited:\n{self.log.read()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"server did not become ready in {ready_s:g} s")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace_s: float = 10) -> None:
        """SIGTERM, then SIGKILL after `grace_s` (0: at once, where nothing is left to
        clean up, e.g. the cluster under it is stopped next)."""
        self.proc.terminate()
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._own_jobs:
            shutil.rmtree(self._own_jobs, ignore_errors=True)


def one_replica_each(folder: Path, **top) -> str:
    """The shipped Serve config, each deployment at a fixed count of one (no autoscaling),
    with `top` set at its top level, written in `folder` -> its path."""
    import yaml

    from server.ray_serve import load_config

    config = {**load_config(), **top}
    for deployment in config["applications"][0]["deployments"]:
        deployment.pop("autoscaling_config", None)
        deployment["num_replicas"] = 1
    path = folder / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.fixture(scope="session")
def server(tiny_checkpoint):
    srv = ServerProcess({
        "ALT_CHECKPOINT": str(tiny_checkpoint),
        "ALT_MAX_UPLOAD_MB": "1",
        "ALT_MAX_DURATION_S": "30",
        "ALT_MAX_LABELS": "50",
        "ALT_MAX_LABEL_CHARS": "60",
        "ALT_MAX_BATCH_SIZE": "8",
        "ALT_MAX_WAIT_MS": "50",
    })  # fmt: skip
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c
