"""The Ray deployments' own logic, outside a cluster: faults injected through stand-in
handles and the Decode replica's class run in this process. The cluster tests
(test_cluster.py) run them on a real Ray cluster."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

pytest.importorskip("ray", reason="Ray is an optional extra (alt-serve[cluster])")

from ray.exceptions import ObjectReconstructionFailedError, RayActorError  # noqa: E402

from media import DecodeJob  # noqa: E402
from server.ray_serve.deployments import DecodeReplica, RemoteModel, _call  # noqa: E402
from server.settings import Settings  # noqa: E402
from tests import videos  # noqa: E402
from tests.media.conftest import FAULTS  # noqa: E402


class _DeadReplicas:
    """A deployment handle whose every call fails as a crashed replica's does."""

    class _Method:
        def __init__(self) -> None:
            self.calls = 0

        def remote(self, *args):
            self.calls += 1

            async def fail():
                raise RayActorError()

            return _Response(fail())

    def __init__(self) -> None:
        self.info = self._Method()


class _Response:
    def __init__(self, coro) -> None:
        self.coro = coro

    def __await__(self):
        return self.coro.__await__()

    def cancel(self) -> None:
        pass


def test_an_ingress_whose_model_replicas_never_come_up_fails_with_a_reason():
    handle = _DeadReplicas()
    model = RemoteModel(handle, start_timeout_s=1.5)

    async def main():
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match="no Model replica answered within 1.5 s") as err:
            await asyncio.wait_for(model.start(), 20)  # without the deadline: forever
        return time.monotonic() - t0, str(err.value)

    waited, message = asyncio.run(main())
    assert waited < 5 and handle.info.calls > 1  # it kept trying until the deadline
    assert "ALT_RAY_START_TIMEOUT_S" in message and "Ray is not running here" in message


def test_an_answer_lost_with_its_node_is_asked_for_again():
    """A replica finished, then its node froze before the caller fetched the answer: Ray
    cannot fetch or rebuild it, and the call goes again instead of failing the request."""

    class _LostOnce:
        calls = 0

        def remote(self, *args):
            self.calls += 1

            async def answer():
                if self.calls == 1:
                    raise ObjectReconstructionFailedError("ab" * 14)
                return ("answer", *args)

            return _Response(answer())

    method = _LostOnce()
    assert asyncio.run(_call(method, 7)) == ("answer", 7)
    assert method.calls == 2


def test_a_larger_job_does_not_close_the_pool_under_running_decodes(monkeypatch):
    """The replica's pool is replaced for a larger job; decodes still running in the old
    pool finish there (before, the old pool was closed under them: 'decoder crashed')."""
    monkeypatch.setenv("PYTHONPATH", str(FAULTS))  # b"SLOW...": a decode that takes 2 s
    replica = DecodeReplica.func_or_class(Settings(backend="fake"), workers=2)
    small, large = DecodeJob(frames=2, size=16), DecodeJob(frames=4, size=32)
    data = videos.keyframed_mp4(frames=30)

    async def main():
        slow = [asyncio.ensure_future(replica.decode(b"SLOW" + data, small)) for _ in range(2)]
        await asyncio.sleep(0.5)  # both are decoding now
        bigger, _ = await replica.decode(data, large)
        return [await s for s in slow], bigger

    try:
        done, bigger = asyncio.run(main())
    finally:
        replica.close()
    assert [frames.shape for frames, _ in done] == [(1, 2, 3, 16, 16)] * 2
    assert bigger.shape == (1, 4, 3, 32, 32)
    assert np.array_equal(done[0][0], done[1][0])


def test_spread_keeps_two_replicas_of_each_deployment_no_more_than_a_share_per_node():
    from server.ray_serve import load_config, spread
    from server.ray_serve.app import _deployment_options

    shipped = _deployment_options(load_config())
    assert spread(shipped, 1) == shipped  # one node: a per-node limit would strand replicas
    two = spread(shipped, 2)
    assert two["Ingress"]["num_replicas"] == 2 and two["Ingress"]["max_replicas_per_node"] == 1
    for name in ("Decode", "Model"):
        scaling = two[name]["autoscaling_config"]
        assert scaling["min_replicas"] == 2
        assert two[name]["max_replicas_per_node"] * 2 == scaling["max_replicas"]
    assert shipped["Ingress"]["num_replicas"] == 1  # the config read is left as it was
    # Named by the operator: left alone; "auto": Serve's own.
    own = {"Ingress": {"num_replicas": 3, "max_replicas_per_node": 3},
           "Model": {"num_replicas": "auto"}}  # fmt: skip
    out = spread(own, 4)
    assert out["Ingress"] == own["Ingress"] and out["Model"] == own["Model"]
    assert out["Decode"] == {"num_replicas": 2, "max_replicas_per_node": 1}
    # A fixed count over three nodes: at most ceil(5 / 3) on one.
    assert spread({"Model": {"num_replicas": 5}}, 3)["Model"]["max_replicas_per_node"] == 2
