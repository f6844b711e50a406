"""Fault injection for decode workers, loaded by Python at start-up when this folder is on
PYTHONPATH: an upload that starts with b"ABORT" makes the decode abort its own process,
one that starts with b"HANG" makes it sleep for an hour, one that starts with b"SLOW" sleeps
two seconds and then decodes the bytes after the prefix. Everything else decodes as usual.
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
