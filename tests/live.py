"""Live sources the tests make on loopback: a generated video pushed at real time as
MPEG-TS over UDP or over RTSP (as a camera or an encoder sends it), or written as HLS and
served by a local HTTP server; and a client of a stream's server-sent events."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import httpx
import numpy as np


class Push:
    """Push `frames` (uint8 `(N, H, W, 3)`) to `url` in `format` as H.264, paced at `fps`, a
    keyframe every second, `loops` times over (0: until stopped)."""

    def __init__(self, frames: np.ndarray, url: str, format: str, fps: int = 25, loops: int = 1,
                 options: dict[str, str] | None = None) -> None:  # fmt: skip
        self.frames, self.url, self.format, self.fps, self.loops = frames, url, format, fps, loops
        self.options = options or {}
        self.sent = 0
        self.started: float | None = None  # monotonic time of the first frame sent
        self.error: Exception | None = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            out = av.open(self.url, mode="w", format=self.format, options=self.options)
        except Exception as err:  # noqa: BLE001 - the test reads it
            self.error = err
            return
        try:
            stream = out.add_stream("libx264", rate=self.fps)
            stream.width, stream.height = self.frames.shape[2], self.frames.shape[1]
            stream.pix_fmt = "yuv420p"
            stream.options = {"g": str(self.fps), "tune": "zerolatency", "preset": "ultrafast"}
            stream.codec_context.time_base = Fraction(1, self.fps)
            loop = 0
            self.started = time.monotonic()
            while not self._stop.is_set() and (self.loops == 0 or loop < self.loops):
                for frame in self.frames:
                    if self._stop.is_set():
                        break
                    ahead = self.started + self.sent / self.fps - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
                    vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
                    vf.pts = self.sent
                    for packet in stream.encode(vf):
                        out.mux(packet)
                    self.sent += 1
                loop += 1
            for packet in stream.encode():
                out.mux(packet)
        except Exception as err:  # noqa: BLE001 - the test reads it
            self.error = err
        finally:
            out.close()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(10)


def UdpPush(frames: np.ndarray, port: int, fps: int = 25, loops: int = 1) -> Push:  # noqa: N802
    """MPEG-TS over UDP to 127.0.0.1:`port`, as a camera or an encoder sends it."""
    return Push(frames, f"udp://127.0.0.1:{port}?pkt_size=1316", "mpegts", fps, loops)


def listening(port: int) -> bool:
    """Whether a TCP socket listens on `port` (read from /proc: connecting would take the
    one connection an RTSP listener accepts)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    return True
    return False


def RtspPush(frames: np.ndarray, port: int, fps: int = 25, wait_s: float = 20) -> Push:  # noqa: N802
    """RTSP (ANNOUNCE/RECORD over TCP) to a listener on 127.0.0.1:`port`, once it listens."""
    deadline = time.monotonic() + wait_s
    while not listening(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    return Push(frames, f"rtsp://127.0.0.1:{port}/live", "rtsp", fps,
                options={"rtsp_transport": "tcp"})  # fmt: skip


def write_hls(frames: np.ndarray, folder: Path, fps: int = 25, segment_s: int = 2) -> Path:
    """`frames` as an HLS playlist of MPEG-TS segments in `folder` -> the playlist."""
    playlist = folder / "live.m3u8"
    out = av.open(str(playlist), mode="w", format="hls",
                  options={"hls_time": str(segment_s), "hls_list_size": "0",
                           "hls_playlist_type": "vod"})  # fmt: skip
    try:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": str(fps * segment_s)}
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = i
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    finally:
        out.close()
    return playlist


class HttpFolder:
    """A folder served over HTTP on loopback."""

    def __init__(self, folder: Path) -> None:
        handler = functools.partial(_Quiet, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class Events:
    """A client of GET /streams/{id}/events, collecting (arrival time, event, data)."""

    def __init__(self, url: str) -> None:
        self.got: list[tuple[float, str, dict]] = []
        self._thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self._thread.start()

    def _run(self, url: str) -> None:
        try:
            with httpx.stream("GET", url, timeout=httpx.Timeout(5, read=60)) as r:
                event = None
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event:
                        self.got.append((time.monotonic(), event, json.loads(line[6:])))
                        if event == "deleted":
                            return
        except httpx.HTTPError:
            return

    def wait(self, pred, timeout: float) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [g for g in self.got if pred(g)]
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError(
            f"no such event in {timeout} s; got {[(e, d) for _, e, d in self.got]}"
        )
