"""The library's own error types: every refusal of bad input is one of these.

A ``ScratchganError`` means "the input was wrong" (a file, an argument, a recipe, a
data set): its message is one line that names what was wrong and what was expected,
and the command line prints it as ``scratchgan CMD: error: MESSAGE`` with exit status 2.
Anything else that escapes (KeyError, TypeError, MemoryError, ...) is a bug in
scratchgan and is shown with its traceback.

Each type also derives from the built-in exception a caller would expect (ValueError,
FileNotFoundError, RuntimeError), so ``except ValueError`` keeps working::

    ScratchganError
    |-- UsageError        a command-line argument or library call with a bad value
    |-- FileRefused       a file that is not a regular file, too large, a link, ...
    |-- MissingFileError  a file or folder that is not there
    |-- CheckpointError   a checkpoint that does not fit the schema
    |-- ConfigError       a config.json that is not what the run wrote
    |-- RunDirError       a run directory in use, or holding a link
    |-- BudgetError       a size from input beyond the memory budget
    |-- TrainingError     data that does not fit the model; a loss that is not finite
    `-- (DataError, LayerError, OptimizerError, RecipeError, LossError,
         BackendError, DistributedError, DownloadError, and the format errors of the
         data readers are defined beside the code that raises them)
"""
from __future__ import annotations


class ScratchganError(Exception):
    """Bad input: reported as one line, never as a traceback."""


class UsageError(ScratchganError, ValueError):
    """An argument with a value the command or function cannot take."""


class FileRefused(ScratchganError, ValueError):
    """A file that the validated reader or writer refuses (kind, size, links, format)."""


class MissingFileError(ScratchganError, FileNotFoundError):
    """A file or folder that should be there and is not."""


class CheckpointError(ScratchganError, ValueError):
    """A checkpoint whose fields do not fit the model its recipe builds."""


class ConfigError(ScratchganError, ValueError):
    """A run's config.json that is not a valid record of the run."""


class RunDirError(ScratchganError, ValueError):
    """A run directory that this run cannot use as it is (in use, or holding a link)."""


class BudgetError(ScratchganError, ValueError):
    """A size read from input (a file header, an option) that would need more memory than allowed."""


class TrainingError(ScratchganError, RuntimeError):
    """Training that cannot go on: data of the wrong shape, a loss that is not finite."""


def one_line(text: str, limit: int = 400) -> str:
    """``text`` as one printable line: control characters (a file name can hold newlines or
    terminal escapes) shown as escapes, and at most ``limit`` characters."""
    out = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))
    return out if len(out) <= limit else out[:limit - 3] + "..."
