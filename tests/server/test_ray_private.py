"""A local Ray cluster started for `alt serve --ray` or `alt recognize-batch --ray` is
private: every port it listens on is on the loopback interface, Ray's token authentication
is on, and the token file is readable by its owner only."""

from __future__ import annotations

import ipaddress
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.procs import process_tree
from tests.server.conftest import ROOT

pytest.importorskip("ray", reason="Ray is not installed: pip install 'alt-serve[cluster]'")
pytestmark = pytest.mark.slow


def _address(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return str(ipaddress.IPv6Address(words))


def listeners(pids: set[int]) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket the processes hold, from /proc."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            cols = row.split()
            if cols[3] == "0A" and cols[9] in inodes:  # LISTEN
                addr, port = cols[1].split(":")
                found.append((_address(addr), int(port, 16)))
    return found


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


DRIVER = """
import json, os, sys
from server.ray_cluster import connect
started = connect(None)
from ray._raylet import AuthenticationMode, get_authentication_mode
print(json.dumps({"started": started, "pid": os.getpid(),
                  "token": get_authentication_mode() == AuthenticationMode.TOKEN}), flush=True)
sys.stdin.readline()  # held until the test has looked
import ray
ray.shutdown()
"""


def test_a_local_cluster_listens_on_loopback_only_with_a_private_token(tmp_path):
    home = tmp_path / "home"
    token = home / ".ray" / "auth_token"
    token.parent.mkdir(parents=True)
    token.write_text("a" * 64)
    token.chmod(0o644)  # as Ray itself leaves it
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAY_AUTH", "RAY_ADDRESS", "RAY_ENABLE"))}  # fmt: skip
    env.update(HOME=str(home), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", DRIVER], cwd=ROOT, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        info = json.loads(line)
        assert info["started"] and info["token"]
        ports = listeners(set(process_tree(info["pid"])))
        assert len(ports) >= 4, ports  # GCS, raylet, object manager, workers at least
        exposed = [p for p in ports if not _loopback(p[0])]
        assert not exposed, f"Ray ports open beyond loopback: {exposed} (of {ports})"
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
        assert token.read_text() == "a" * 64  # the token in use is kept, not replaced
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert "was readable by other users" in proc.stderr.read()


def test_a_missing_token_is_made_owner_only(tmp_path, monkeypatch):
    from server.ray_cluster import private_token

    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "deep" / "token"))
    path = private_token()
    assert path == tmp_path / "deep" / "token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_text()) == 64
    assert private_token().read_text() == path.read_text()  # made once
