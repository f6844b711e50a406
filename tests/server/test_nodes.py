"""`alt serve --ray` on a Ray cluster of several nodes, made on this machine as separate
machines would make it (`ray start --head`, then `ray start --address` per node: a raylet
each, with its own workers), with node health checks set as docs/deploy.md says. Nodes are
lost with traffic running: frozen (SIGSTOP of the node's processes, as a hung machine
behaves) and crashed (SIGKILL); a node that joins afterwards gets replicas again."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.procs import Asker, process_tree
from tests.server.conftest import ROOT, ServerProcess, free_port, one_replica_each

os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", uuid.uuid4().hex + uuid.uuid4().hex)
pytest.importorskip("ray", reason="Ray is not installed: pip install 'alt-serve[cluster]'")

pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).parent / "ray")
# A node that stops answering is declared dead after about 5 failed checks of 1 s.
NODE_HEALTH = json.dumps({
    "health_check_period_ms": 1000,
    "health_check_timeout_ms": 1000,
    "health_check_failure_threshold": 5,
})  # fmt: skip
REQUEST_TIMEOUT_S = 25  # a request held by a lost node past this would answer 504

# The placement, read from the head's GCS by a process of its own that is no Ray driver:
# it joins no node, so a frozen node cannot hold it, and each question costs milliseconds
# where a driver's start costs ~4 s.
_TABLES = """
import json, sys
from ray._private.state import GlobalState
from ray._raylet import GcsClientOptions
state = GlobalState()
state._initialize_global_state(GcsClientOptions.create(
    sys.argv[1], None, allow_cluster_id_nil=True, fetch_cluster_id_if_nil=False))
for _ in sys.stdin:
    ports = {n["NodeID"]: n["NodeManagerPort"] for n in state.node_table() if n["Alive"]}
    out = {}
    for a in state.actor_table(None).values():
        name = a["ActorClassName"]
        if a["State"] == "ALIVE" and name.startswith("ServeReplica:"):
            out.setdefault(name.rsplit(":", 1)[1], []).append(ports.get(a["Address"]["NodeID"]))
    print("ANSWER", json.dumps(out), flush=True)
"""


class Nodes:
    """A head and worker nodes, each `ray start`ed with 2 CPUs."""

    def __init__(self) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.raylets: dict[str, int] = {}  # node name -> its node manager port
        self._tables: Asker | None = None  # the placement's reader, once asked
        self._start("--head", f"--port={self.port}", "--include-dashboard=false",
                    f"--system-config={NODE_HEALTH}")  # fmt: skip

    def _start(self, *args: str) -> None:
        subprocess.run([RAY, "start", "--num-cpus=2", "--disable-usage-stats", *args],
                       check=True, capture_output=True, cwd=ROOT)  # fmt: skip

    def add(self, name: str) -> None:
        port = free_port()
        self._start(f"--address={self.address}", f"--node-manager-port={port}",
                    f"--dashboard-agent-listen-port={free_port()}")  # fmt: skip
        self.raylets[name] = port

    def processes(self, name: str) -> list[int]:
        """The node's raylet and everything it started (workers, replicas, agents)."""
        found = subprocess.run(["pgrep", "-f", f"node_manager_port={self.raylets[name]}"],
                               capture_output=True, text=True).stdout.split()  # fmt: skip
        assert len(found) == 1, found
        return process_tree(int(found[0]))

    def signal(self, name: str, sig: int) -> int:
        pids = self.processes(name)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return len(pids)

    def placement(self) -> dict[str, list[int]]:
        """Each deployment's running replicas, by the node manager port of their node."""
        if self._tables is None:
            self._tables = Asker(_TABLES, self.address, cwd=ROOT)
        return {k: sorted(v) for k, v in self._tables.ask().items()}

    def head_port(self, placed: dict[str, list[int]]) -> int:
        """The head's node manager port, among those of a placement."""
        others = set(self.raylets.values())
        ports = {p for ports in placed.values() for p in ports} - others
        assert len(ports) == 1, placed
        return ports.pop()

    def stop(self) -> None:
        if self._tables is not None:
            self._tables.stop()
        subprocess.run([RAY, "stop", "--force"], capture_output=True)


@pytest.fixture(scope="module")
def nodes():
    cluster = Nodes()
    cluster.add("b")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> str:
    """The shipped config with fixed counts (one replica each, as configured: the spread
    makes it two), and one HTTP proxy, on the head: one host has one port 8000."""
    return one_replica_each(tmp_path_factory.mktemp("serve"), proxy_location="HeadOnly")


@pytest.fixture(scope="module")
def service(nodes, config):
    env = {"ALT_REQUEST_TIMEOUT_S": str(REQUEST_TIMEOUT_S)}
    srv = ServerProcess(env, args=("--ray", "--ray-address", nodes.address, "--ray-config", config),
                        ready_s=240)  # fmt: skip
    yield srv
    # The cluster is stopped next, and the application with it: removing it first, with a
    # node lost, would wait out Serve's graceful shutdown for nothing.
    srv.stop(grace_s=0)


class Traffic:
    """Clients posting videos in a loop, and one asking /readyz every 0.5 s."""

    def __init__(self, url: str, videos: list[Path], clients: int = 4) -> None:
        self.url, self.videos = url, videos
        self.answers: list[tuple[float, float, object, str]] = []  # (start, seconds, status, body)
        self.fault = float("inf")  # when the fault was made (time.monotonic())
        self.ready: list[tuple[object, str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(i,)) for i in range(clients)]
        self._threads.append(threading.Thread(target=self._readyz))
        for t in self._threads:
            t.start()

    def _client(self, i: int) -> None:
        with httpx.Client(timeout=REQUEST_TIMEOUT_S + 30) as client:
            n = i
            while not self._stop.is_set():
                video = self.videos[n % len(self.videos)]
                n += 1
                t0 = time.monotonic()
                try:
                    r = client.post(self.url + "/recognize",
                                    files={"video": (video.name, video.read_bytes())})  # fmt: skip
                    answer: tuple[object, str] = (r.status_code, r.text)
                except httpx.HTTPError as err:
                    answer = (type(err).__name__, "")
                self.answers.append((t0, time.monotonic() - t0, *answer))

    def _readyz(self) -> None:
        while not self._stop.is_set():
            try:
                # Held by a frozen node's Ingress, it is answered when the node is given up.
                r = httpx.get(self.url + "/readyz", timeout=15)
                self.ready.append((r.status_code, r.text))
            except httpx.HTTPError as err:
                self.ready.append((type(err).__name__, ""))
            time.sleep(0.5)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def statuses(self) -> dict[object, int]:
        out: dict[object, int] = {}
        for _, _, status, _ in self.answers:
            out[status] = out.get(status, 0) + 1
        return out


def _lost_node_costs_no_request(traffic: Traffic) -> None:
    """Every request answered 200, or a JSON 503 naming the loss (never a 504 or a plain
    text error); /readyz answered every time."""
    statuses = traffic.statuses()
    longest = max(seconds for _, seconds, _, _ in traffic.answers)
    print(f"answers {statuses}, longest {longest:.1f} s, /readyz {len(traffic.ready)} times")
    # Not 200: sent how long after the fault, answered how long after, what.
    odd = [(round(t0 - traffic.fault, 1), round(seconds, 1), status, body[:120])
           for t0, seconds, status, body in traffic.answers if status != 200]  # fmt: skip
    print("not 200:", odd)
    assert set(statuses) <= {200, 503}, (statuses, odd)
    assert statuses.get(200, 0) >= 20, statuses
    for _, _, status, body in traffic.answers:
        if status == 503:
            assert json.loads(body)["error"] == "unavailable", body
    unanswered = [status for status, _ in traffic.ready if not isinstance(status, int)]
    assert not unanswered, unanswered


def test_every_deployment_is_spread_over_the_nodes(nodes, service, world_videos):
    # Jobs: one replica holds them, whichever Ingress replica answers the rest. (The jobs'
    # application is deployed after the service answers /readyz.)
    for _ in range(120):
        with contextlib.suppress(httpx.HTTPError):  # the proxy updates its routes meanwhile
            if httpx.get(service.url + "/jobs", timeout=10).status_code == 200:
                break
        time.sleep(0.5)
    placed = nodes.placement()
    head, b = nodes.head_port(placed), nodes.raylets["b"]
    for name in ("Ingress", "Decode", "Model"):
        assert placed[name] == sorted([head, b]), placed
    assert len(placed["Jobs"]) == 1, placed
    r = httpx.post(service.url + "/jobs", files={"video": ("a.mp4", world_videos[0].read_bytes())},
                   timeout=30)  # fmt: skip
    assert r.status_code == 202, r.text
    for _ in range(120):
        job = httpx.get(service.url + r.headers["location"], timeout=10).json()
        if job["state"] not in ("queued", "running"):
            break
        time.sleep(0.5)
    assert job["state"] == "succeeded", job
    listed = httpx.get(service.url + "/jobs", timeout=10).json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]


def test_a_frozen_node_is_given_up_before_any_request_times_out(nodes, service, world_videos):
    traffic = Traffic(service.url, world_videos[:4])
    time.sleep(3)
    traffic.fault = time.monotonic()
    frozen = nodes.signal("b", signal.SIGSTOP)
    # The node is given up about 5 s after it froze; traffic goes on past that. Stopping
    # the clients waits for every request in flight, so one the frozen node held past the
    # request timeout shows up as its 504 whatever the length of this window.
    time.sleep(10)
    traffic.stop()
    nodes.signal("b", signal.SIGCONT)  # declared dead by now: it exits
    assert frozen >= 4
    _lost_node_costs_no_request(traffic)
    placed = nodes.placement()
    assert all(len(placed[name]) == 1 for name in ("Ingress", "Decode", "Model")), placed


def test_a_node_that_joins_gets_replicas_again(nodes, service):
    nodes.add("c")
    c = nodes.raylets["c"]
    for _ in range(180):
        placed = nodes.placement()
        if all(c in placed.get(name, []) for name in ("Ingress", "Decode", "Model")):
            break
        time.sleep(1)
    assert all(placed[name] == sorted([nodes.head_port(placed), c])
               for name in ("Ingress", "Decode", "Model")), placed  # fmt: skip


def test_a_crashed_node_with_an_ingress_costs_no_request(nodes, service, world_videos):
    assert nodes.raylets["c"] in nodes.placement()["Ingress"]
    traffic = Traffic(service.url, world_videos[:4])
    time.sleep(3)
    traffic.fault = time.monotonic()
    nodes.signal("c", signal.SIGKILL)
    time.sleep(10)
    traffic.stop()
    _lost_node_costs_no_request(traffic)
