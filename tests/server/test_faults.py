"""Faults injected into a real backend, served over real HTTP; and access control."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import uvicorn

from server.api import create_app
from server.engine.backends.torch_backend import TorchBackend
from server.settings import Settings
from tests.server.conftest import free_port


class FlakyBackend:
    """The real tiny backend, except that chosen calls to encode_video raise."""

    def __init__(self, inner: TorchBackend, fail_calls: set[int]) -> None:
        self.inner, self.info, self.fail_calls, self.calls = inner, inner.info, fail_calls, 0

    def encode_video(self, frames, explain_regions):
        self.calls += 1
        if self.calls in self.fail_calls:
            raise RuntimeError("injected fault")
        return self.inner.encode_video(frames, explain_regions)

    def encode_labels(self, labels):
        return self.inner.encode_labels(labels)

    def stored_label_embeddings(self):
        return self.inner.stored_label_embeddings()


class ThreadServer:
    def __init__(self, app) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


def test_a_failing_batch_answers_500_and_the_next_request_succeeds(tiny_checkpoint, video_dir):
    settings = Settings(checkpoint=tiny_checkpoint, max_wait_ms=0)
    backend = FlakyBackend(TorchBackend(tiny_checkpoint), fail_calls={1})
    data = (video_dir / "clip0.mp4").read_bytes()
    with ThreadServer(create_app(settings, backend)) as srv:
        first = httpx.post(
            srv.url + "/recognize", content=data, headers={"content-type": "video/mp4"}, timeout=30
        )
        second = httpx.post(
            srv.url + "/recognize", content=data, headers={"content-type": "video/mp4"}, timeout=30
        )
        ready = httpx.get(srv.url + "/readyz")
    assert first.status_code == 500 and "injected fault" in first.json()["detail"]
    assert second.status_code == 200 and second.json()["actions"]
    assert ready.status_code == 200


@pytest.fixture(scope="module")
def keyed(tiny_checkpoint):
    app = create_app(Settings(checkpoint=tiny_checkpoint, api_key="s3cret"))
    with ThreadServer(app) as srv:
        yield srv


def test_api_key_guards_everything_but_health(keyed, video_dir):
    data = (video_dir / "clip0.mp4").read_bytes()
    url = keyed.url
    assert httpx.get(url + "/healthz").status_code == 200
    assert httpx.get(url + "/readyz").status_code == 200
    for path in ("/labels", "/entities", "/metrics"):
        assert httpx.get(url + path).status_code == 401
        assert httpx.get(url + path, headers={"authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(url + path, headers={"authorization": "Bearer s3cret"}).status_code == 200
    denied = httpx.post(url + "/recognize", content=data, headers={"content-type": "video/mp4"})
    assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer"
    ok = httpx.post(
        url + "/recognize", content=data, timeout=30,
        headers={"content-type": "video/mp4", "authorization": "Bearer s3cret"},
    )  # fmt: skip
    assert ok.status_code == 200
    # Open by design: the page, its assets and samples, the API's documentation, health.
    for path in ("/", "/static/app.js", "/samples", "/docs", "/redoc", "/openapi.json",
                 "/docs-assets/swagger-ui.css"):  # fmt: skip
        assert httpx.get(url + path).status_code == 200, path


def test_settings_reject_a_missing_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="no ALT checkpoint"):
        Settings(checkpoint=tmp_path)
