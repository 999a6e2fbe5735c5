"""Eight host CPU devices for the sharding tests: XLA reads the flag once, so it must be set before jax loads."""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
