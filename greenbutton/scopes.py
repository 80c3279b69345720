"""The ESPI scopes this data custodian offers, and django-oauth-toolkit's scopes backend over them.

A Green Button scope is one string naming the function blocks (FB), the interval and block lengths
and how much history a third party asks for (NAESB REQ.21 ESPI; the Alliance's certification uses
the same form). Third parties choose one of the strings we publish here, as the standard intends:
the authorization request's `scope` must be one of them, and the consent page explains it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from oauth2_provider.scopes import BaseScopes

# The function blocks named in the offered scopes, as the consent page tells them to a consumer.
FUNCTION_BLOCKS = {
    1: "Common content and structure",
    3: "Core Connect My Data",
    4: "Interval metering",
    5: "Interval electricity metering",
    8: "Forward and reverse metering (energy exported by solar panels)",
    13: "Security and privacy classes",
    14: "Authorization and authentication (OAuth 2.0)",
    15: "Usage summary (per bill: consumption and peak demand)",
    16: "Usage summary with cost (the bill amount)",
    18: "Multiple usage points (every meter shared)",
    32: "Resource-level REST",
    35: "REST for bulk transfer (Batch)",
    37: "Query parameters (published and updated filters)",
}
# What a granted function block lets a token read (enforced in greenbutton.views).
FB_INTERVALS = 4
FB_EXPORT = 8
FB_SUMMARY = 15
FB_COST = 16
DATA_BLOCKS = frozenset({FB_INTERVALS, 5, FB_EXPORT, FB_SUMMARY, FB_COST})


@dataclass(frozen=True)
class EspiScope:
    text: str
    function_blocks: frozenset[int]
    interval_s: int
    block: str
    history_days: int

    @classmethod
    def parse(cls, text: str) -> EspiScope:
        """The parts of an ESPI scope string; ValueError names what is wrong."""
        parts = dict(part.split("=", 1) for part in text.split(";") if "=" in part)
        try:
            blocks = frozenset(int(n) for n in parts["FB"].split("_"))
            return cls(
                text=text,
                function_blocks=blocks,
                interval_s=int(parts["IntervalDuration"]),
                block=parts.get("BlockDuration", "daily"),
                history_days=int(parts.get("HistoryLength", "0")) // 86_400,
            )
        except (KeyError, ValueError) as error:
            raise ValueError(f"not an ESPI scope: {text!r}") from error

    def has(self, block: int) -> bool:
        return block in self.function_blocks

    @property
    def descriptions(self) -> list[tuple[int, str]]:
        """The function blocks that name data, in words (what a consumer weighs before consenting)."""
        return [(n, FUNCTION_BLOCKS[n]) for n in sorted(self.function_blocks & DATA_BLOCKS)]

    @property
    def technical_blocks(self) -> list[int]:
        """The others: how the data travels (OAuth, REST, batch, query parameters), not what it is."""
        return sorted(self.function_blocks - DATA_BLOCKS)

    def earliest_day(self, today: dt.date) -> dt.date:
        return today - dt.timedelta(days=self.history_days)


# 395 days: a year and a month of history, so a year-on-year comparison has its whole month.
HISTORY_S = 395 * 86_400
_COMMON = "1_3_13_14_18_32_35_37"
OFFERED = [
    EspiScope.parse(f"FB={_COMMON}_4_5_8_15_16;IntervalDuration=900;BlockDuration=daily;HistoryLength={HISTORY_S}"),
    EspiScope.parse(f"FB={_COMMON}_4_5_8;IntervalDuration=900;BlockDuration=daily;HistoryLength={HISTORY_S}"),
    EspiScope.parse(f"FB={_COMMON}_15;IntervalDuration=900;BlockDuration=daily;HistoryLength={HISTORY_S}"),
]
OFFERED_BY_TEXT = {scope.text: scope for scope in OFFERED}


def _title(scope: EspiScope) -> str:
    wanted = [FUNCTION_BLOCKS[n] for n in (FB_INTERVALS, FB_EXPORT, FB_SUMMARY, FB_COST) if scope.has(n)]
    return "Green Button data: " + "; ".join(wanted)


class EspiScopes(BaseScopes):
    """OAUTH2_PROVIDER["SCOPES_BACKEND_CLASS"]: the offered ESPI scopes; the first is the default."""

    def get_all_scopes(self) -> dict[str, str]:
        return {scope.text: _title(scope) for scope in OFFERED}

    def get_available_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        return [scope.text for scope in OFFERED]

    def get_default_scopes(self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any) -> list[str]:
        return [OFFERED[0].text]
