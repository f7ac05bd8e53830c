"""The command line (`editedid-cli`): restore, restore-crop, batch, models and eval
commands (commands) and the evaluation command (eval).
"""

from engine.cli.commands import main

__all__ = ["main"]
