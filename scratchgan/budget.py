"""The memory budget: every size that comes from input is checked against it first.

A size read from a file header (an IDX file's dimensions, a tar member's length), from
a recipe (``z_dim``, the batch size) or from an option (``sample --n``) decides how much
memory the program will ask for. Each is turned into bytes and compared with the
budget *before* anything is allocated or written, so a crafted or mistyped size is
refused with one line instead of a MemoryError, a swapping machine or a killed process.

The budget is 80% of the machine's physical memory (8 GiB where the system does not
say), or what ``--memory-budget SIZE`` or ``$SCRATCHGAN_MEMORY_BUDGET`` sets (bytes,
or a number with K, M, G or T: ``--memory-budget 2G``).
"""
from __future__ import annotations

import os
import re

from .errors import BudgetError, UsageError

ENVIRONMENT = "SCRATCHGAN_MEMORY_BUDGET"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_override: int | None = None


def parse_size(text: str) -> int:
    """Bytes from "123", "512M", "2G", "1.5T" (binary units); UsageError otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", str(text), re.IGNORECASE)
    if not match:
        raise UsageError(f"memory budget {text!r}: expected bytes or a number with K, M, G or T, e.g. 2G")
    size = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    if size < 1 << 20:
        raise UsageError(f"memory budget {text!r}: at least 1M")
    return size


def physical_memory_bytes() -> int | None:
    """The machine's RAM (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def set_memory_budget(size) -> None:
    """Set the budget for this process (bytes, or text such as "2G"; None: the default)."""
    global _override
    _override = None if size is None else (parse_size(size) if isinstance(size, str) else int(size))


def memory_budget() -> int:
    """The budget in bytes: set_memory_budget's, else $SCRATCHGAN_MEMORY_BUDGET, else 80% of RAM."""
    if _override is not None:
        return _override
    if os.environ.get(ENVIRONMENT):
        return parse_size(os.environ[ENVIRONMENT])
    ram = physical_memory_bytes()
    return int(0.8 * ram) if ram else 8 << 30


def gib(nbytes: float) -> str:
    return f"{nbytes / (1 << 30):,.2f} GiB" if nbytes >= 1 << 26 else f"{nbytes / (1 << 20):,.1f} MiB"


def require(nbytes: int, what: str, option: str | None = None) -> None:
    """BudgetError unless ``nbytes`` (what ``what`` would take) fits the budget; ``option``
    names the setting that makes it smaller."""
    budget = memory_budget()
    if nbytes > budget:
        smaller = f"choose a smaller {option}, or " if option else ""
        raise BudgetError(f"{what} needs about {gib(nbytes)}, more than the memory budget of {gib(budget)}; "
                          f"{smaller}raise the budget with --memory-budget SIZE (or ${ENVIRONMENT})")
