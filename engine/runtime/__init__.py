"""The runtime: what drives a restore holds an `Engine` (the loaded model and its one lock).

    from engine.runtime import Engine, ModelSpec

    engine = Engine(ModelSpec(source=folder).load())  # one per process that holds a model
    restorer = engine.restorer("diffusion", on_wait=say)   # its model work takes turns
    result = restore_photo(original, edited, params, restorer=restorer)

`ModelSpec` (engine.models.spec) is what names the model across a boundary: the command
line's options, the app's settings and a Ray worker's spec all come down to one.
The desktop app holds exactly one Engine, shared by its interactive runs and its batches;
see engine.runtime.engine for why a run must hold the lock.
"""

from engine.models.spec import InvalidModelSpec, ModelSpec
from engine.runtime.engine import Engine, EngineRestorer

__all__ = ["Engine", "EngineRestorer", "InvalidModelSpec", "ModelSpec"]
