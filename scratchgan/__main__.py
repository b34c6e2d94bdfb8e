"""``python -m scratchgan ...`` is the ``scratchgan`` command."""
import sys

from .cli import main

sys.exit(main())
