"""What the example scripts share: a ``--backend`` option, and errors as one line.

    parser = argparse.ArgumentParser()
    ...
    args = parse_args(parser)                    # adds --backend and switches to it
    with errors_as_one_line(parser.prog):
        images = load_dataset(args.data, ...)    # a missing file ends the script with one line
"""
from __future__ import annotations

import sys
from contextlib import contextmanager

from .backend import set_backend
from .errors import ScratchganError


#: the errors a user can cause (missing or malformed data or files, an unavailable backend,
#: a bad value): the library's own types (scratchgan/errors.py), reported as one line by the
#: scratchgan command and the example scripts alike. Anything else is a bug: its traceback shows.
USER_ERRORS = (ScratchganError,)


def describe(err: BaseException) -> str:
    """The message of a user error."""
    return str(err)


@contextmanager
def errors_as_one_line(prog: str):
    """Turn USER_ERRORS into ``PROG: error: MESSAGE`` and exit status 1, instead of a traceback."""
    try:
        yield
    except USER_ERRORS as err:
        sys.exit(f"{prog}: error: {describe(err)}")


def parse_args(parser, argv=None):
    """``parser.parse_args(argv)`` with a ``--backend`` option added, and that backend made active
    (before the script builds its models, so the weights are created where the backend keeps arrays)."""
    parser.add_argument("--backend", help="numba, numpy or cupy (default: $SCRATCHGAN_BACKEND, else numba)")
    args = parser.parse_args(argv)
    if args.backend:
        with errors_as_one_line(parser.prog):
            set_backend(args.backend)
    return args
