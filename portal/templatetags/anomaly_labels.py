"""Anomalies in an operator's words (monitoring.detection.describe)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import template

from monitoring.detection import describe

register = template.Library()


@register.filter
def anomaly_label(anomaly: Mapping[str, Any]) -> str:
    return describe(anomaly)
