"""Money as people read it: the contract's amounts are integer fen; yuan is for display."""

from __future__ import annotations

__all__ = ["format_yuan"]


def format_yuan(fen: int) -> str:
    """Fen as yuan with two decimals and thousands separators: 123456 -> '1,234.56'."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError(f"money must be an int count of fen, got {type(fen).__name__}")
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}{yuan:,}.{cents:02d}"
