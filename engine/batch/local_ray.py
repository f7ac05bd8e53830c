"""The environment a private Ray (`--cluster local`) starts its processes with, so that
nothing leaves the computer (README, Privacy; issue 23). engine.batch.cluster enters it
around ray.init; this module does not import Ray.
"""

from __future__ import annotations

import contextlib
import os
import sys

# Where Ray's own processes send plain-HTTP requests: a closed port on this computer.
NOWHERE_PROXY = "http://127.0.0.1:9"


@contextlib.contextmanager
def private_ray_environment():
    """The environment the processes of a private Ray start with: nothing leaves the
    computer (README, Privacy; issue 23, checked with strace in tests/test_no_network.py).

    - One machine: Ray's switch for single-machine Rays (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER
      =0, read by each process Ray starts; in this process its constant, read when ray
      was imported, is set for the start) makes every process use the loopback address.
      Otherwise each finds "its" address by pointing a UDP socket at 8.8.8.8, and all
      talk through the machine's network address.
    - Ray's API-server process always loads its usage-statistics module, which asks the
      cloud metadata services (169.254.169.254, metadata.google.internal: a DNS query)
      which cloud it runs on, even with usage statistics off (Ray 2.5x, usage_lib
      `get_cloud_from_metadata_requests`; no switch turns it off). Those are plain-HTTP
      requests through `requests`, so plain HTTP of these processes goes to a closed local
      port (`http_proxy`), loopback excepted (`no_proxy`): the probe fails at once,
      nothing is sent. HTTPS (a model download a worker is asked for) is not affected.
    - RAY_USAGE_STATS_REPORT_URL: the "usage statistics are off" message Ray sends for
      clusters started by `ray start` goes nowhere too.

    Set while ray.init starts the processes (they inherit it), then restored: this
    process's own downloads are unaffected.
    """
    loopback = "127.0.0.1,localhost,::1"
    changes = {
        "http_proxy": NOWHERE_PROXY,
        "HTTP_PROXY": NOWHERE_PROXY,
        "no_proxy": ",".join(filter(None, [os.environ.get("no_proxy", ""), loopback])),
        "NO_PROXY": ",".join(filter(None, [os.environ.get("NO_PROXY", ""), loopback])),
        "RAY_USAGE_STATS_REPORT_URL": NOWHERE_PROXY + "/",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }
    saved = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    constants = sys.modules.get("ray._private.ray_constants")  # not imported here: the
    cluster_mode = getattr(constants, "ENABLE_RAY_CLUSTER", None)  # caller has imported ray
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if constants is not None:
            constants.ENABLE_RAY_CLUSTER = cluster_mode
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
