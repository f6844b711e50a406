"""Deployment files: no Docker engine runs here, so check what can be checked statically."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_images_are_lean_non_root_and_install_dependencies_before_code():
    for name in ("Dockerfile", "Dockerfile.gpu", "Dockerfile.slim"):
        text = (ROOT / "docker" / name).read_text()
        assert "ARG BASE=python:3.11-slim" in text and "USER alt" in text, name
        assert "COPY . ." not in text and "[dev]" not in text and "make " not in text, name
        assert text.index("pip install") < text.index("COPY server"), name  # deps first
        assert "--mount=type=secret,id=pipcert" in text and "PIP_CERT=" not in text.split("RUN")[0]
        assert 'CMD ["/app/.venv/bin/python", "-m", "cli.main", "serve"]' in text, name
        assert "COPY checkpoints" not in text, name  # models are mounted
    for name in ("Dockerfile", "Dockerfile.gpu"):
        assert "-c constraints.txt" in (ROOT / "docker" / name).read_text()
    gpu = (ROOT / "docker" / "Dockerfile.gpu").read_text()
    assert "nvidia/cuda" not in gpu and "pip uninstall -y onnxruntime" in gpu


def test_compose_services_bind_loopback_with_readiness_checks():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    cpu, gpu = compose["services"]["alt"], compose["services"]["alt-gpu"]
    for name, svc in compose["services"].items():
        assert "/readyz" in " ".join(svc["healthcheck"]["test"]), name
        if name in ("alt-ray", "front"):
            continue  # the Ray profile: only its front is published (the next test)
        assert svc["ports"] == ["${ALT_BIND:-127.0.0.1}:${ALT_HOST_PORT:-8000}:8000"]
        assert (ROOT / svc["build"]["dockerfile"]).is_file()
    for svc in (cpu, gpu):
        assert svc["volumes"] == ["./checkpoints:/models:ro", "jobs:/var/lib/alt"]
        assert svc["environment"]["ALT_CHECKPOINT"] == "/models/default"
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert gpu["profiles"] == ["gpu"] and "profiles" not in cpu


def test_compose_real_profile_inits_real_weights_into_a_volume_then_serves():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert "models" in compose["volumes"]
    for name in ("alt-real", "alt-real-gpu"):
        svc = compose["services"][name]
        assert svc["profiles"] == ["real"] and "models:/models" in svc["volumes"]
        script = svc["command"][-1]
        assert (
            "cli.main init" in script and "exec /app/.venv/bin/python -m cli.main serve" in script
        )
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


def test_compose_ray_profile_publishes_only_nginx_in_front_of_serve():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    ray, front = compose["services"]["alt-ray"], compose["services"]["front"]
    assert ray["profiles"] == front["profiles"] == ["ray"]
    assert "ports" not in ray and ray["expose"] == ["8000"]  # Serve's proxy stays inside
    assert ray["build"]["args"]["EXTRAS"] == "cluster"
    assert ray["command"][-6:] == ["serve", "--ray", "--host", "0.0.0.0", "--port", "8000"]
    assert front["ports"] == ["${ALT_BIND:-127.0.0.1}:${ALT_HOST_PORT:-8000}:8080"]
    assert front["volumes"] == ["./docker/nginx.conf:/etc/nginx/nginx.conf:ro"]
    assert front["depends_on"]["alt-ray"]["condition"] == "service_healthy"
    conf = (ROOT / "docker" / "nginx.conf").read_text()
    assert "server alt-ray:8000;" in conf and "listen 8080;" in conf
    # The Dockerfile installs an extra group when asked, and nothing more by default.
    assert "ARG EXTRAS=" in (ROOT / "docker" / "Dockerfile").read_text()
