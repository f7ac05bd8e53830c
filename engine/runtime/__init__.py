"""The runtime: what drives a restore holds an `Engine` (the loaded model and its one lock).

    from engine.runtime import Engine

    engine = Engine(model)                            # one per process that holds a model
    restorer = engine.restorer("diffusion", on_wait=say)   # its model work takes turns
    result = restore_photo(original, edited, params, restorer=restorer)

The desktop app holds exactly one Engine, shared by its interactive runs and its batches;
see engine.runtime.engine for why a run must hold the lock.
"""

from engine.runtime.engine import Engine, EngineRestorer

__all__ = ["Engine", "EngineRestorer"]
