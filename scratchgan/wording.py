"""Counts in messages, with the right plural: ``counted(1, "file")`` -> "1 file"."""
from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """"1 file", "2 files", "0 files" (``plural`` where adding an s is wrong)."""
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"
