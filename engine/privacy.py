"""Portraits never leave the machine: switch off every library's telemetry.

Call `apply_privacy_defaults()` before huggingface_hub, diffusers or transformers are
imported (huggingface_hub reads these variables once, at import): first thing in
`engine/__init__.py` and in the app's `main()`. It only sets environment variables of
this process; it never opens a connection and never enables offline mode (downloads the
user starts must still work).

- HF_HUB_DISABLE_TELEMETRY=1: huggingface_hub (used by diffusers and transformers) sends
  no usage pings with downloads.
- DISABLE_TELEMETRY=1: the older name diffusers and transformers also read.
- DO_NOT_TRACK=1: the cross-tool convention (https://donottrack.sh), also honoured by
  huggingface_hub.
- ORT_DISABLE_TELEMETRY=1: onnxruntime (insightface's detector and ArcFace) otherwise
  keeps a device id and a telemetry database in
  ~/.cache/Microsoft/DeveloperTools/.onnxruntime/ (deviceid, onnxruntime.db) from the
  first InferenceSession on Linux; with the switch nothing is written (checked with a
  fresh HOME, onnxruntime 1.32). Read when the runtime's environment is created, so
  before onnxruntime is imported.

The values are forced, not defaulted: a "0" in the user's environment does not turn
telemetry back on inside EditedID.
"""

from __future__ import annotations

import os

PRIVACY_ENV = {
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "ORT_DISABLE_TELEMETRY": "1",
}


def apply_privacy_defaults(environ: dict | None = None) -> dict[str, str]:
    """Set the telemetry switches in `environ` (default os.environ); returns them."""
    target = os.environ if environ is None else environ
    for key, value in PRIVACY_ENV.items():
        target[key] = value
    return dict(PRIVACY_ENV)
