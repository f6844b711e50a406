"""Live sources the tests make on loopback: a generated video pushed at real time as
MPEG-TS over UDP (as a camera or an encoder sends it), or written as HLS and served by a
local HTTP server."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


class UdpPush:
    """Push `frames` (uint8 `(N, H, W, 3)`) to udp://127.0.0.1:`port` as H.264 in MPEG-TS,
    paced at `fps`, a keyframe every second, `loops` times over (0: until stopped)."""

    def __init__(self, frames: np.ndarray, port: int, fps: int = 25, loops: int = 1) -> None:
        self.frames, self.port, self.fps, self.loops = frames, port, fps, loops
        self.sent = 0
        self.started: float | None = None  # monotonic time of the first frame sent
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        out = av.open(f"udp://127.0.0.1:{self.port}?pkt_size=1316", mode="w", format="mpegts")
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
        finally:
            out.close()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(10)


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
