"""Starting or joining the Ray cluster that `alt serve --ray` and `alt recognize-batch --ray`
run on, private by default.

A local cluster (no address given) keeps every Ray port on the loopback interface and runs
with Ray's token authentication switched on here, its token in a file only the owner can
read (0600). Joining a cluster (`--ray-address`, `RAY_ADDRESS`) warns when that cluster
runs without token authentication: anyone who reaches its ports can run code on it.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


def token_path() -> Path:
    """Where Ray reads its token: `RAY_AUTH_TOKEN_PATH`, else `~/.ray/auth_token`."""
    named = os.environ.get("RAY_AUTH_TOKEN_PATH")
    return Path(named) if named else Path.home() / ".ray" / "auth_token"


def private_token() -> Path:
    """The token file, made (256 random bits) if missing and kept owner-only."""
    path = token_path()
    if path.is_file():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            path.chmod(0o600)
            log.warning("Ray's token %s was readable by other users (mode %o); now 0600",
                        path, mode)  # fmt: skip
        return path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    return path


def _token_auth_on() -> None:
    os.environ["RAY_AUTH_MODE"] = "token"
    from ray._raylet import Config

    Config.initialize("")  # this process's Ray config reads the mode again


def _loopback_only() -> None:
    # Ray binds its servers to every interface unless it believes it runs a single-machine
    # cluster; this flag (read by Ray at import, and by the processes it starts) says so.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def connect(address: str | None = None) -> bool:
    """Connect this process to Ray: the cluster at `address` (else `RAY_ADDRESS`), or a new
    private local one. Returns whether a local cluster was started (the caller stops it)."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, log_to_driver=False, include_dashboard=False)
        from ray._raylet import AuthenticationMode, get_authentication_mode

        if get_authentication_mode() != AuthenticationMode.TOKEN:
            log.warning(
                "the Ray cluster at %s runs without token authentication: anyone who can "
                "reach its ports can run code on it (start it with RAY_AUTH_MODE=token, "
                "see docs/deploy.md)", address,
            )  # fmt: skip
        return False
    if os.environ.get("RAY_AUTH_MODE", "token").lower() != "token":
        log.warning("RAY_AUTH_MODE=%s: the local Ray cluster runs without authentication",
                    os.environ["RAY_AUTH_MODE"])  # fmt: skip
    else:
        private_token()
        _token_auth_on()
    _loopback_only()
    ray.init(_node_ip_address=LOOPBACK, log_to_driver=False, include_dashboard=False)
    return True
