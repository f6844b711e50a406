"""The service on a real local Ray cluster (2 CPUs): `alt serve --ray` answers as `alt serve`
does, survives the death of its model replica, and `alt recognize-batch --ray` answers as
the local batch does."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests import front
from tests.procs import Asker
from tests.server.conftest import ROOT, ServerProcess, free_port, one_replica_each

# Ray reads its authentication mode once, when it is imported.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", uuid.uuid4().hex + uuid.uuid4().hex)
pytest.importorskip("ray", reason="Ray is not installed: pip install 'alt-serve[cluster]'")

pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).parent / "ray")
FAULTS = ROOT / "tests" / "media" / "faults"


@pytest.fixture(scope="module")
def cluster():
    """A Ray head on this machine with 2 CPUs, as `ray start --head` makes one, with Ray's
    token authentication (a token of the test's own, for the head and every client). Its
    workers load the decode fault injection (uploads starting with HANG never finish)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FAULTS), str(ROOT)])}
    subprocess.run(
        [RAY, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
         "--disable-usage-stats"],
        check=True, capture_output=True, cwd=ROOT, env=env,
    )  # fmt: skip
    yield f"127.0.0.1:{port}"
    subprocess.run([RAY, "stop", "--force"], capture_output=True)


# A Ray driver of its own (with `serve` imported) that runs the code it is given and answers
# what it prints: one process for the module's questions about the cluster, each of which
# would otherwise pay ~4 s of imports and connecting. It is stopped before the cluster, and
# this process never joins the cluster: a driver outlives its cluster badly.
_DRIVER = """
import contextlib, io, json, sys, traceback
import ray
from ray import serve
ray.init(address=sys.argv[1], log_to_driver=False)
for line in sys.stdin:
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(json.loads(line), {"ray": ray, "serve": serve})
        answer = {"out": out.getvalue().strip()}
    except Exception:
        answer = {"error": traceback.format_exc()}
    print("ANSWER", json.dumps(answer), flush=True)
"""


@pytest.fixture(scope="module")
def on_cluster(cluster):
    driver = Asker(_DRIVER, cluster, cwd=ROOT)

    def run(code: str) -> str:
        answer = driver.ask(json.dumps(code))
        assert "error" not in answer, answer["error"][-2000:]
        return answer["out"]

    yield run
    driver.stop()


MODEL_PID = "print(serve.get_deployment_handle('Model', app_name='alt').pid.remote().result())"
INGRESS_PID = (
    "from ray._private.state import actors\n"
    "print(*[a['Pid'] for a in actors().values()\n"
    "        if a['State'] == 'ALIVE' and a['ActorClassName'] == 'ServeReplica:alt:Ingress'])"
)


@pytest.fixture(scope="module")
def starting_plain():
    """The plain server, starting beside the cluster (most of a start is waiting)."""
    with cf.ThreadPoolExecutor(1) as pool:
        starting = pool.submit(ServerProcess, {})
        yield starting
        starting.result().stop()


@pytest.fixture(scope="module")
def plain(starting_plain, on_ray) -> ServerProcess:
    return starting_plain.result()


@pytest.fixture(scope="module")
def one_each(tmp_path_factory) -> str:
    """The shipped Serve config with one replica per deployment: on 2 CPUs, an autoscaled
    second Decode replica would take the CPU a replaced Model replica needs."""
    return one_replica_each(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def on_ray(cluster, one_each):
    srv = ServerProcess(
        {}, args=("--ray", "--ray-address", cluster, "--ray-config", one_each), ready_s=180
    )
    yield srv
    srv.stop()


def _post(url: str, path: Path, params=None, timeout: float = 90) -> httpx.Response:
    return httpx.post(url + "/recognize", params=params,
                      files={"video": (path.name, path.read_bytes())}, timeout=timeout)  # fmt: skip


def _same_answer(a: dict, b: dict) -> None:
    assert [x["label"] for x in a["actions"]] == [x["label"] for x in b["actions"]]
    for x, y in zip(a["actions"], b["actions"]):
        assert x["score"] == pytest.approx(y["score"], abs=1e-5)
        assert x["similarity"] == pytest.approx(y["similarity"], abs=1e-5)
    assert [e["name"] for e in a.get("entities", [])] == [e["name"] for e in b.get("entities", [])]
    assert [e["frames"] for e in a.get("entities", [])] == [
        e["frames"] for e in b.get("entities", [])
    ]
    assert a.get("regions") == b.get("regions")
    assert a["video"] == b["video"] and a["model"] == b["model"]


def test_ray_answers_exactly_as_the_plain_server(plain, on_ray, world_videos):
    videos = world_videos[:3]
    asks = [None, {"labels": "waving,clapping,jumping"}, {"explain": "regions", "top_k": 8}]
    for video, params in zip(videos, asks):
        a, b = _post(plain.url, video, params), _post(on_ray.url, video, params)
        assert a.status_code == b.status_code == 200, (a.text, b.text)
        _same_answer(a.json(), b.json())
    # Errors go through unchanged: a file that is no video, an unknown label set.
    junk = world_videos[0].parent / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    for params, path in ((None, junk), ({"labels": "@nope"}, videos[0])):
        a, b = _post(plain.url, path, params), _post(on_ray.url, path, params)
        assert a.status_code == b.status_code and a.status_code in (415, 422)
        assert a.json() == b.json()
    assert (
        httpx.get(plain.url + "/openapi.json").json()
        == httpx.get(on_ray.url + "/openapi.json").json()
    )
    ready = httpx.get(on_ray.url + "/readyz").json()
    assert ready["status"] == "ready" and ready["model"] == "demo"
    # Live streams are watched by `alt serve` only: on Ray the routes say so.
    streams = httpx.get(on_ray.url + "/streams")
    assert streams.status_code == 503 and "not on Ray" in streams.json()["detail"]


async def _half_heads(port: int, n: int, hold_s: float) -> list[float | None]:
    """`n` connections that send half a request head: seconds until each was closed."""

    async def one() -> float | None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        t = time.perf_counter()
        writer.write(b"POST /recognize HTTP/1.1\r\nHost: test\r\nContent-Ty")
        try:
            await asyncio.wait_for(reader.read(), hold_s)
            return time.perf_counter() - t
        except TimeoutError:
            return None
        except OSError:
            return time.perf_counter() - t
        finally:
            writer.close()

    return await asyncio.gather(*(one() for _ in range(n)))


def _raw(port: int, data: bytes) -> tuple[int, dict]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(data)
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.mark.skipif(front.NGINX is None, reason="nginx is not installed (apt-get install nginx)")
def test_nginx_in_front_of_ray_holds_the_line_of_alt_serve(on_ray, world_videos):
    """The shipped front door (docker/nginx.conf, the compose profile `ray`) in front of
    Serve's proxy: answers pass through unchanged; stalled heads are closed within the
    header timeout (Serve's proxy alone holds them); an oversized head, a malformed request,
    one address over its limit and a service that is gone are answered in the error shape."""
    door = front.Nginx(f"127.0.0.1:{on_ray.port}", free_port())
    try:
        direct = _post(on_ray.url, world_videos[0], {"labels": "waving,clapping"})
        through = _post(door.url, world_videos[0], {"labels": "waving,clapping"})
        assert direct.status_code == through.status_code == 200
        _same_answer(direct.json(), through.json())
        assert httpx.get(door.url + "/recognize").json()["error"] == "method_not_allowed"

        async def both():
            return await asyncio.gather(
                _half_heads(door.port, 50, hold_s=8), _half_heads(on_ray.port, 5, hold_s=8)
            )

        closed, held = asyncio.run(both())
        assert all(t is not None and t < 5 + 1 for t in closed), closed  # header timeout 5 s
        assert held == [None] * 5  # Serve's proxy alone holds them: why the door is there

        status, body = _raw(
            door.port, b"GET /labels?labels=" + b"a" * 300_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        assert (status, body["error"]) == (431, "head_too_large")
        status, body = _raw(door.port, b"GET /x HTTP/1.1\r\nBad Header\r\n\r\n")
        assert (status, body["error"]) == (400, "bad_request")

        # 64 uploads in progress from one address: the 65th request of that address is
        # refused, another address is served.
        uploads = []
        for _ in range(64):
            s = socket.create_connection(("127.0.0.1", door.port))
            s.sendall(b"POST /recognize HTTP/1.1\r\nHost: t\r\nContent-Type: video/mp4\r\n"
                      b"Content-Length: 100000\r\n\r\n" + b"\0" * 1000)  # fmt: skip
            uploads.append(s)
        time.sleep(0.5)
        refused = httpx.get(door.url + "/healthz")
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json()["error"] == "too_many_connections"
        other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        assert other.get(door.url + "/healthz").status_code == 200
        for s in uploads:
            s.close()
    finally:
        door.stop()
    gone = front.Nginx(f"127.0.0.1:{free_port()}", free_port())  # nothing listens upstream
    try:
        r = httpx.get(gone.url + "/healthz")
        assert r.status_code == 503 and r.json()["error"] == "unavailable"
    finally:
        gone.stop()


def test_timelines_and_jobs_on_ray_answer_as_the_plain_server(plain, on_ray, tmp_path):
    """A timeline in the request streams windows from the Decode deployment to the Model
    deployment; a job decodes in the ingress's own workers and batches on the Model
    deployment. Both answer as the plain server does."""
    from media import write_video
    from training.generate import render_timeline

    labels = json.loads((ROOT / "checkpoints" / "default" / "labels.json").read_text())
    frames, _ = render_timeline(labels[:4], 5.0, seed=77)
    path = tmp_path / "four.mp4"
    write_video(path, frames)
    params = {"timeline": "true", "windows": "true"}
    a, b = _post(plain.url, path, params), _post(on_ray.url, path, params)
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    ta, tb = a.json(), b.json()
    assert [s["label"] for s in ta["timeline"]] == [s["label"] for s in tb["timeline"]]
    assert ta["summary"] == tb["summary"] and ta["video"] == tb["video"]
    for x, y in zip(ta["windows"], tb["windows"]):
        assert x["actions"][0]["label"] == y["actions"][0]["label"]
        assert x["actions"][0]["score"] == pytest.approx(y["actions"][0]["score"], abs=1e-5)

    job = httpx.post(on_ray.url + "/jobs", params={"windows": "true"}, timeout=60,
                     content=path.read_bytes(), headers={"content-type": "video/mp4"})  # fmt: skip
    assert job.status_code == 202, job.text
    deadline = time.monotonic() + 120
    while (status := httpx.get(on_ray.url + job.headers["location"]).json())["state"] in (
        "queued",
        "running",
    ):
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert status["state"] == "succeeded", status
    assert [s["label"] for s in status["result"]["timeline"]] == [
        s["label"] for s in ta["timeline"]
    ]


def test_a_killed_model_replica_fails_no_request_and_is_replaced(on_cluster, on_ray, world_videos):
    before = int(on_cluster(MODEL_PID))
    readiness: list[tuple[int, dict]] = []
    watching = threading.Event()

    def watch() -> None:  # /readyz every 0.2 s while the replica is replaced
        while not watching.is_set():
            r = httpx.get(on_ray.url + "/readyz", timeout=10)
            readiness.append((r.status_code, r.json()))
            time.sleep(0.2)

    with cf.ThreadPoolExecutor(9) as pool:
        watcher = pool.submit(watch)
        futures = [pool.submit(_post, on_ray.url, world_videos[i % len(world_videos)])
                   for i in range(8)]  # fmt: skip
        os.kill(before, signal.SIGKILL)
        # No request hangs (each has 90 s) and none fails: the calls go to the replacement.
        statuses = [f.result().status_code for f in futures]
        watching.set()
        watcher.result()
    assert statuses == [200] * 8
    # Readiness told the truth: degraded (naming the Model) while no replica ran, and
    # answered throughout.
    degraded = [body for code, body in readiness if code == 503]
    assert degraded and all(b["status"] == "degraded" and b["lacking"] == ["Model"]
                            for b in degraded), readiness  # fmt: skip
    after = int(on_cluster(MODEL_PID))
    assert after != before
    assert _post(on_ray.url, world_videos[0]).status_code == 200
    # Readiness follows Serve's own status, read every second: ready again within seconds,
    # and lacking nothing but the Model until then.
    deadline = time.monotonic() + 10
    while (ready := httpx.get(on_ray.url + "/readyz")).status_code != 200:
        assert time.monotonic() < deadline and ready.json()["lacking"] == ["Model"], ready.text
        time.sleep(0.2)


def test_a_request_whose_ingress_replica_is_lost_is_answered_503_in_the_error_shape(
    on_cluster, on_ray, world_videos
):
    """Serve's proxy sends nothing for a request whose replica died, and its server would
    write a plain-text 500; the proxies `alt serve --ray` starts answer 503 `unavailable`."""
    before = int(on_cluster(INGRESS_PID))
    slow = b"SLOW" + world_videos[0].read_bytes()  # decoded 2 s late: held by the Ingress
    with cf.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(httpx.post, on_ray.url + "/recognize", content=slow,
                             headers={"content-type": "video/mp4"}, timeout=90)  # fmt: skip
        deadline = time.monotonic() + 10
        while httpx.get(on_ray.url + "/readyz").json().get("in_flight", 0) < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(before, signal.SIGKILL)
        lost = answer.result()
    assert lost.status_code == 503, lost.text
    assert lost.json()["error"] == "unavailable" and lost.headers["retry-after"] == "1"
    # Serve replaces the Ingress; the service answers again.
    deadline = time.monotonic() + 120
    while (status := _post(on_ray.url, world_videos[1]).status_code) != 200:
        assert status == 503 and time.monotonic() < deadline, status
        time.sleep(1)
    assert int(on_cluster(INGRESS_PID)) != before


def test_recognize_batch_on_ray_equals_the_local_run(cluster, on_ray, world_videos, tmp_path):
    folder = world_videos[0].parent
    run = [sys.executable, "-m", "cli.main", "recognize-batch", str(folder), "--quiet"]
    timeline = ["--timeline", "--window-s", "0.5"]
    local, remote = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    local_t, remote_t = tmp_path / "local-t.jsonl", tmp_path / "ray-t.jsonl"

    def here() -> None:  # the local runs, beside the cluster's (they share no state)
        for extra, out in (([], local), (timeline, local_t)):
            subprocess.run([*run, *extra, "--out", str(out)], check=True, cwd=ROOT,
                           capture_output=True)  # fmt: skip

    with cf.ThreadPoolExecutor(1) as pool:
        done_here = pool.submit(here)
        # The serving application holds the cluster's 2 CPUs; the batch job needs them.
        on_ray.stop()  # removes the application, and Serve with it: nothing listens there now
        with pytest.raises(httpx.ConnectError):
            httpx.get(on_ray.url + "/healthz", timeout=5)
        for extra, out in (([], remote), (timeline, remote_t)):
            proc = subprocess.run([*run, *extra, "--out", str(out), "--ray", "--ray-address",
                                   cluster], cwd=ROOT, capture_output=True, text=True,
                                  timeout=300)  # fmt: skip
            assert proc.returncode == 0, proc.stderr[-3000:]
        done_here.result()
    a = {line["path"]: line for line in map(json.loads, local.read_text().splitlines())}
    b = {line["path"]: line for line in map(json.loads, remote.read_text().splitlines())}
    assert a.keys() == b.keys() and len(a) == len(list(folder.iterdir()))
    for path, line in a.items():
        assert line["status"] == b[path]["status"]
        if line["status"] == 200:
            _same_answer(line, b[path])
        else:
            assert (line["error"], line["detail"]) == (b[path]["error"], b[path]["detail"])
    # A timeline per line: Ray Data actors each answer whole videos as the local run does.
    a = {line["path"]: line for line in map(json.loads, local_t.read_text().splitlines())}
    b = {line["path"]: line for line in map(json.loads, remote_t.read_text().splitlines())}
    assert a.keys() == b.keys()
    for path, line in a.items():
        assert line["status"] == b[path]["status"]
        if line["status"] == 200:
            assert line["video"]["windows"] >= 2
            assert [s["label"] for s in line["timeline"]] == [
                s["label"] for s in b[path]["timeline"]
            ]
            assert line["summary"] == b[path]["summary"]


def test_the_429_and_504_rules_hold_on_ray(cluster, on_ray, one_each, world_videos):
    on_ray.stop()  # the cluster's 2 CPUs go to an application with a queue of 2
    srv = ServerProcess({"ALT_MAX_IN_FLIGHT": "2", "ALT_REQUEST_TIMEOUT_S": "4"},
                        args=("--ray", "--ray-address", cluster, "--ray-config", one_each),
                        ready_s=180)  # fmt: skip
    try:
        good = world_videos[0].read_bytes()
        answers: list[httpx.Response] = []

        def hang() -> None:
            answers.append(httpx.post(srv.url + "/recognize", content=b"HANG" + good,
                                      headers={"content-type": "video/mp4"}, timeout=60))  # fmt: skip

        stuck = [threading.Thread(target=hang) for _ in range(2)]
        for t in stuck:
            t.start()
        deadline = time.monotonic() + 10
        while httpx.get(srv.url + "/readyz").json()["in_flight"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert httpx.get(srv.url + "/readyz").status_code == 503  # saturated
        refused = _post(srv.url, world_videos[1])
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        for t in stuck:
            t.join()
        # The hung decodes end with the request timeout, as in `alt serve`.
        assert [a.status_code for a in answers] == [504, 504]
        assert "4 s" in answers[0].json()["detail"]
        # ... and their decodes were stopped: the application answers again at once.
        t0 = time.monotonic()
        assert _post(srv.url, world_videos[2]).status_code == 200
        assert time.monotonic() - t0 < 4
    finally:
        srv.stop()
