"""`alt serve --backend onnxruntime` answers as the torch backend does, over real HTTP."""

from __future__ import annotations

import httpx
import pytest

from export.onnx_export import export_onnx
from tests.server.conftest import ServerProcess


@pytest.fixture(scope="module")
def onnx_server(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("served-onnx")
    export_onnx(tiny_checkpoint, out)
    srv = ServerProcess({"ALT_BACKEND": "onnxruntime", "ALT_ONNX_DIR": str(out)})
    yield srv
    srv.stop()


def test_same_answers_as_the_torch_backend(onnx_server, client, video_dir):
    assert httpx.get(onnx_server.url + "/readyz").json()["backend"] == "onnxruntime"
    for i in range(4):
        data = (video_dir / f"clip{i}.mp4").read_bytes()
        for params in (
            {"explain": "regions"},
            {"labels": "surfing,kicking a ball,knitting,juggling", "top_k": 3},
        ):
            headers = {"content-type": "video/mp4"}
            ours = httpx.post(
                onnx_server.url + "/recognize",
                content=data,
                params=params,
                headers=headers,
                timeout=60,
            ).json()
            ref = client.post("/recognize", content=data, params=params, headers=headers).json()
            assert [a["label"] for a in ours["actions"]] == [a["label"] for a in ref["actions"]]
            assert all(
                abs(a["score"] - b["score"]) < 1e-4 for a, b in zip(ours["actions"], ref["actions"])
            )
            assert [e["name"] for e in ours["entities"]] == [e["name"] for e in ref["entities"]]
            assert ours.get("regions") == ref.get("regions")
            assert ours["model"]["backend"] == "onnxruntime" and ref["model"]["backend"] == "torch"


def test_the_onnx_server_runs_where_torch_cannot_be_imported(
    tiny_checkpoint, tmp_path_factory, client, video_dir
):
    from pathlib import Path

    out = tmp_path_factory.mktemp("onnx-no-torch")
    export_onnx(tiny_checkpoint, out)
    blocker = Path(__file__).resolve().parent / "notorch"
    srv = ServerProcess({"ALT_BACKEND": "onnxruntime", "ALT_ONNX_DIR": str(out),
                         "PYTHONPATH": str(blocker)})  # fmt: skip
    try:
        data = (video_dir / "clip2.mp4").read_bytes()
        params = {"labels": "surfing,kicking a ball,knitting", "top_k": 3}
        headers = {"content-type": "video/mp4"}
        ours = httpx.post(srv.url + "/recognize", content=data, params=params, headers=headers,
                          timeout=60).json()  # fmt: skip
        ref = client.post("/recognize", content=data, params=params, headers=headers).json()
        assert [a["label"] for a in ours["actions"]] == [a["label"] for a in ref["actions"]]
        assert all(
            abs(a["score"] - b["score"]) < 1e-4 for a, b in zip(ours["actions"], ref["actions"])
        )
    finally:
        srv.stop()
