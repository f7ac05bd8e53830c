"""The command line (`editedid-cli`): restore, restore-crop and models (commands), batch
(batch) and eval (eval), with what they share - exit codes, parameter and restorer
options, error handling - in options.
"""

from engine.cli.commands import main

__all__ = ["main"]
