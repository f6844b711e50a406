"""Fault injection for decode workers, loaded by Python at start-up when this folder is on
PYTHONPATH: an upload that starts with b"ABORT" makes the decode abort its own process,
one that starts with b"HANG" makes it sleep for an hour, one that starts with b"SLOW" sleeps
two seconds and then decodes the bytes after the prefix. Everything else decodes as usual
(but see ALT_FAULT_CHUNK_DELAY_S below).
"""

import os
import time

import media.decode

_decode_clip = media.decode.decode_clip


def _faulty_decode_clip(source, *args, **kwargs):
    if isinstance(source, bytes | bytearray):
        if source.startswith(b"ABORT"):
            os.abort()
        if source.startswith(b"HANG"):
            time.sleep(3600)
        if source.startswith(b"SLOW"):
            time.sleep(2)
            source = source[4:]
    return _decode_clip(source, *args, **kwargs)


media.decode.decode_clip = _faulty_decode_clip

# Windows (long videos): with ALT_FAULT_CHUNK_DELAY_S set, every chunk of windows takes that
# much longer to decode, so a job can be watched, cancelled or interrupted mid-way. With
# ALT_FAULT_FIRST_LOG set, each run over a video's windows appends the window it starts
# from to that file (a resumed index starts after its stored windows).
import media.windows  # noqa: E402

_chunks = media.windows.WindowedVideo.chunks


def _slow_chunks(self, per_chunk, first=0):
    delay = float(os.environ.get("ALT_FAULT_CHUNK_DELAY_S", "0"))
    log = os.environ.get("ALT_FAULT_FIRST_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{first}\n")
    for chunk in _chunks(self, per_chunk, first):
        time.sleep(delay)
        yield chunk


media.windows.WindowedVideo.chunks = _slow_chunks
