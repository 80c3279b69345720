"""plotly.js comes from the installed plotly package, never from a CDN nor from a committed copy.

runserver and live_server serve it through the finders (the browser tests load it that way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.staticfiles import finders
from django.core.management import call_command


def test_plotly_is_found_as_a_static_file() -> None:
    found = finders.find("vendor/plotly.min.js")
    assert found is not None
    assert Path(str(found)).stat().st_size > 1_000_000


def test_collectstatic_copies_plotly_under_vendor(tmp_path: Path, settings: Any) -> None:
    settings.STATIC_ROOT = tmp_path
    call_command("collectstatic", interactive=False, verbosity=0)
    assert (tmp_path / "vendor" / "plotly.min.js").stat().st_size > 1_000_000
