"""Decoding on a GPU (NVDEC through PyAV's hardware acceleration)."""

import numpy as np
import pytest

from media import decode_clip
from media.worker import _hwaccel
from tests import videos


def _cuda_device() -> str | None:
    """Why GPU decoding cannot run here, or None when it can."""
    import av.codec.hwaccel

    if "cuda" not in av.codec.hwaccel.hwdevices_available():
        return "this PyAV's FFmpeg has no CUDA hardware device support"
    try:
        import torch

        if not torch.cuda.is_available():
            return "no CUDA device"
    except ImportError:
        return "no CUDA device (torch is not installed to tell)"
    return None


@pytest.mark.gpu
def test_nvdec_decodes_the_same_frames_as_the_cpu():
    why = _cuda_device()
    if why:
        pytest.skip(why)
    data = videos.keyframed_mp4(frames=120, keyframe_every=25, size=(240, 320))
    cpu, cpu_info = decode_clip(data, 8, 64, threads=1)
    gpu, gpu_info = decode_clip(data, 8, 64, hwaccel=_hwaccel("cuda"))
    assert gpu_info.decoder == "cuda" and cpu_info.decoder == "cpu"
    assert gpu_info.sampled == cpu_info.sampled
    # The same bitstream decodes to the same YUV; only rounding of the scaler may differ.
    assert np.abs(gpu.astype(int) - cpu.astype(int)).mean() < 1.0
