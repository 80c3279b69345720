"""VEE: interval edits with their audit trail, and the exception queue."""

from __future__ import annotations

__all__: list[str] = []
