"""The house rules that code review would otherwise have to remember."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"model", "media", "training", "export", "server", "cli"}
ALLOWED = {
    "model": set(),
    "media": set(),
    "training": {"model", "media"},
    "export": {"model"},
    "server": {"model", "media"},
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_go_one_way(package):
    for path in (ROOT / package).rglob("*.py"):
        bad = _imports(path) - ALLOWED[package] - {package}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_model_imports_no_server_or_export_libraries():
    for path in (ROOT / "model").rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not {"fastapi", "onnx", "onnxruntime", "uvicorn", "tensorrt"} & {
            str(n).split(".")[0] for n in names
        }, path


# Inside server/: one package per concern, imports going one way (down this table).
SERVER_ALLOWED = {
    "engine": set(),
    "settings": {"engine"},
    "api": {"engine", "settings", "jobs", "library", "streams"},
    "offline": {"engine", "settings", "ray_cluster", "library"},
    "jobs": {"engine", "library"},
    "library": {"engine"},
    "streams": {"engine"},
    "ray_cluster": set(),
    "ray_serve": {"engine", "settings", "api", "jobs", "library", "ray_cluster"},
}
TRANSPORTS = {"fastapi", "starlette", "uvicorn", "ray", "multipart"}


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute_imports(path: Path) -> set[str]:
    """Every module this file imports, relative imports resolved."""
    package = _module_of(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}
    return found


def _server_part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "server" and len(parts) > 1 else None


def test_server_packages_import_one_way():
    for path in (ROOT / "server").rglob("*.py"):
        part = _server_part(_module_of(path))
        if part is None:
            continue
        used = {_server_part(m) for m in _absolute_imports(path)} - {None, part}
        used &= set(SERVER_ALLOWED)
        bad = used - SERVER_ALLOWED[part]
        assert not bad, f"{path.relative_to(ROOT)} ({part}) imports server.{sorted(bad)}"


@pytest.mark.parametrize("package", ["engine", "jobs", "library"])
def test_the_engine_and_the_jobs_know_no_transport(package):
    for path in (ROOT / "server" / package).rglob("*.py"):
        bad = TRANSPORTS & _third_party(path)
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_only_the_cli_and_the_ray_ingress_import_the_http_app():
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in ("cli", "tests", "benchmarks", ".venv") or rel.parts[:2] in (
            ("server", "api"),
            ("server", "ray_serve"),
        ):
            continue
        if any(m == "server.api" or m.startswith("server.api.") for m in _absolute_imports(path)):
            raise AssertionError(f"{rel} imports the HTTP app")


def test_ray_is_imported_only_by_the_ray_modules():
    allowed = {ROOT / "server" / "offline" / "ray_data.py", ROOT / "server" / "ray_cluster.py"}
    allowed |= set((ROOT / "server" / "ray_serve").rglob("*.py"))
    for package in ("server", "model", "media", "training", "export", "cli"):
        for path in (ROOT / package).rglob("*.py"):
            if path not in allowed:
                assert "ray" not in _third_party(path), f"{path.relative_to(ROOT)} imports ray"


def test_no_comment_cites_a_file_the_repository_lacks():
    """Design notes live in docs/; a comment that names a .md file must find it here."""
    import re

    cited = re.compile(r"\b([\w./-]+\.md)\b")
    for package in ("server", "model", "media", "training", "export", "cli", "benchmarks"):
        for path in (ROOT / package).rglob("*.py"):
            for name in cited.findall(path.read_text()):
                candidates = [ROOT / name, ROOT / "docs" / Path(name).name]
                assert any(c.is_file() for c in candidates), f"{path.relative_to(ROOT)}: {name}"


def _third_party(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    return {str(n).split(".")[0] for n in names}


def test_media_is_pyav_and_numpy_only():
    """Decode workers start fast and a torch-free image can decode: no torch in media/."""
    for path in (ROOT / "media").rglob("*.py"):
        assert not {"torch", "open_clip", "fastapi", "onnxruntime"} & _third_party(path), path


def test_model_does_not_decode_video():
    for path in (ROOT / "model").rglob("*.py"):
        assert "av" not in _third_party(path), f"{path.relative_to(ROOT)} imports PyAV"
