"""The lake's one exception."""

from __future__ import annotations


class LakeError(Exception):
    """The lake refused or could not do something; the message says what, and what to do."""
