"""``breccia convert --ray ADDRESS``: each shard a ray remote task on an existing cluster.

``ADDRESS`` is what ``ray.init(address=...)`` takes (``auto``, ``ray://host:10001``, ``host:6379``); ``local``
starts a private single-node ray for this run. If the calling process already initialised ray (a notebook, a test),
that connection is used. Workers must see SRC and the staging directory at the same paths (a shared file system):
they write their shard into the staging directory and return only the journal record.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from breccia._errors import BackendNotInstalledError

from ._convert_shard import ShardTask, run_shard

__all__ = ["run_ray"]


def run_ray(tasks: list[ShardTask], address: str, done: Callable[[dict[str, Any]], Any]) -> None:
    # Under `uv run`, ray (≥ 2.4x) by default ships the working directory and has every worker `uv run` it, which
    # syncs the project into the driver's environment (it replaced the installed breccia with a copy of the checkout
    # in our CI). Workers here need only the installed breccia-bridges, so the hook stays off unless the user set it.
    # ray reads the variable when it is first imported.
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    try:
        import ray
    except ImportError:
        raise BackendNotInstalledError("--ray needs ray: pip install 'breccia-bridges[ray]'") from None
    if not ray.is_initialized():
        kw: dict[str, Any] = {"include_dashboard": False} if address == "local" else {"address": address}
        ray.init(log_to_driver=False, **kw)
    remote = ray.remote(run_shard)
    pending = [remote.remote(t) for t in tasks]
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        done(ray.get(ready[0]))
