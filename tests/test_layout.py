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
