"""Deployment files: no Docker engine runs here, so check what can be checked statically."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _run_command() -> str:
    readme = (ROOT / "README.md").read_text()
    return re.search(r"^(make \w+)\s+# serve", readme, re.M).group(1)


def test_images_run_the_readme_command():
    cmd = _run_command().split()
    for name in ("Dockerfile", "Dockerfile.gpu"):
        text = (ROOT / "docker" / name).read_text()
        assert f"CMD {cmd!r}".replace("'", '"') in text, name
        assert "ALT_HOST=0.0.0.0" in text


def test_compose_serves_on_8000_with_readiness_check_and_gpu_variant():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    cpu, gpu = compose["services"]["alt"], compose["services"]["alt-gpu"]
    for svc in (cpu, gpu):
        assert "8000:8000" in svc["ports"]
        assert "/readyz" in " ".join(svc["healthcheck"]["test"])
        assert any(v.startswith("./checkpoints:") for v in svc["volumes"])
        assert (ROOT / svc["build"]["dockerfile"]).is_file()
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert gpu["profiles"] == ["gpu"] and "profiles" not in cpu


def test_compose_real_profile_inits_real_weights_into_a_volume_then_serves():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert "models" in compose["volumes"]
    for name in ("alt-real", "alt-real-gpu"):
        svc = compose["services"][name]
        assert svc["profiles"] == ["real"] and "models:/models" in svc["volumes"]
        script = svc["command"][-1]
        assert "alt init" in script and "exec .venv/bin/alt serve" in script
        assert svc["environment"]["ALT_CHECKPOINT"] == "/models/real"
    assert compose["services"]["alt-real-gpu"]["environment"]["ALT_DEVICE"] == "cuda"


def test_compose_slim_service_serves_an_onnx_export_on_loopback_as_non_root():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    slim = compose["services"]["alt-slim"]
    assert slim["profiles"] == ["slim"] and slim["image"] == "alt-serve:slim"
    assert slim["ports"] == ["${ALT_BIND:-127.0.0.1}:${ALT_HOST_PORT:-8000}:8000"]
    assert slim["volumes"][0].endswith(":/models/onnx:ro")
    dockerfile = (ROOT / slim["build"]["dockerfile"]).read_text()
    assert "USER alt" in dockerfile and "ALT_BACKEND=onnxruntime" in dockerfile
    assert "ARG BASE=" in dockerfile and "--mount=type=secret,id=pipcert" in dockerfile
    requirements = (ROOT / "docker" / "requirements-slim.txt").read_text()
    assert "torch" not in requirements and "open_clip" not in requirements
