"""A real server on loopback over a tiny checkpoint, and real video files."""

from __future__ import annotations

import functools
import os
import random
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


_PORT_SLOTS = 8


@functools.cache
def _ports() -> range:
    """This process's share of the ports below the kernel's ephemeral range.

    A port from `bind(0)` lies in the ephemeral range, where every outgoing connection
    also takes its local port, and a port handed out that way may be taken again by the
    time a server binds it. Below that range only listeners pick ports, and each xdist
    worker has a slot of its own (its number), so none hands out another's."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    worker = os.environ.get("PYTEST_XDIST_WORKER", "").removeprefix("gw")
    slot = int(worker) % _PORT_SLOTS if worker.isdigit() else 0
    first, last = 20000, min(low, 32768) - 1
    size = (last - first) // _PORT_SLOTS
    return range(first + slot * size, first + (slot + 1) * size)


_handed: set[int] = set()


def free_port() -> int:
    """A loopback port nobody binds (TCP or UDP), not handed out before in this process."""
    share = _ports()
    for port in random.sample(share, len(share)):
        if port in _handed:
            continue
        try:
            with socket.socket() as tcp, socket.socket(type=socket.SOCK_DGRAM) as udp:
                tcp.bind(("127.0.0.1", port))
                udp.bind(("127.0.0.1", port))
        except OSError:
            continue
        _handed.add(port)
        return port
    raise RuntimeError(f"no free port in {share}")


class ServerProcess:
    def __init__(
        self, env: dict[str, str], args: tuple[str, ...] = (), ready_s: float = 90
    ) -> None:
        path = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self._own_jobs = None if env.get("ALT_JOBS_DIR") else tempfile.mkdtemp(prefix="alt-jobs-")
        jobs = env.get("ALT_JOBS_DIR") or self._own_jobs
        full_env = {**os.environ, "ALT_JOBS_DIR": jobs, **env, "PYTHONPATH": path}
        # A port found free can still be bound by another program before the server binds
        # it: then the server says so and exits, and it starts again on another port.
        for _ in range(3):
            if self._start(full_env, args, ready_s):
                return
        raise RuntimeError(f"server found no free port:\n{self._log_text()}")

    def _start(self, env: dict[str, str], args: tuple[str, ...], ready_s: float) -> bool:
        """Starts the server on a fresh port -> True once ready, False if the port was taken."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The log goes to a file: a pipe nobody reads fills after 64 KB of access log and
        # then blocks the server on its next log line.
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - lives with the server
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), *args],
            env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.time() + ready_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                text = self._log_text()
                if "address already in use" in text:
                    return False
                raise RuntimeError(f"server exited:\n{text}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"server did not become ready in {ready_s:g} s")

    def _log_text(self) -> str:
        self.log.seek(0)
        return self.log.read()

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
