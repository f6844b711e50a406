"""The distribution's nginx running the shipped front-door configuration (docker/nginx.conf)
on loopback, in front of a given upstream: for the tests and the slow-header benchmark."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "docker" / "nginx.conf"
NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).is_file()), None
)


def render(upstream: str, port: int, folder: Path) -> str:
    """The shipped configuration with its upstream and port replaced, and its temporary
    files under `folder` (so nginx needs no root and leaves nothing behind)."""
    text = CONF.read_text()
    for old, new in (("server alt-ray:8000;", f"server {upstream};"),
                     ("listen 8080;", f"listen 127.0.0.1:{port};")):  # fmt: skip
        assert text.count(old) == 1, f"{CONF} no longer has {old!r} once"
        text = text.replace(old, new)
    temps = "".join(
        f"    {name}_temp_path {folder / name};\n"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return text.replace("http {\n", "http {\n" + temps, 1)


class Nginx:
    """`nginx` in the foreground with the rendered configuration, ready when it accepts."""

    def __init__(self, upstream: str, port: int) -> None:
        if NGINX is None:
            raise RuntimeError("nginx is not installed")
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.folder = Path(tempfile.mkdtemp(prefix="alt-front-"))
        (self.folder / "nginx.conf").write_text(render(upstream, port, self.folder))
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.folder), "-c", str(self.folder / "nginx.conf"), "-e", "stderr",
             "-g", f"daemon off; pid {self.folder / 'nginx.pid'};"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    def stop(self) -> None:
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        if self.proc.poll() is None:
            self.proc.kill()
        shutil.rmtree(self.folder, ignore_errors=True)
