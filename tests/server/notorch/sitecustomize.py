"""Loaded by Python at start-up when this folder is on PYTHONPATH: torch and open_clip cannot
be imported, as in an image that ships only ONNX Runtime."""

import sys

sys.modules["torch"] = None
sys.modules["open_clip"] = None
