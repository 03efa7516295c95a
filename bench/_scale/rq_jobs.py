"""The RQ side of bench/scale_out.py: the no-op job (RQ imports it by its dotted path)."""

from __future__ import annotations


def noop(i: int) -> int:
    return i
