"""Bills, their line items and versions, billing runs, off-cycle reads."""

from __future__ import annotations

__all__: list[str] = []
