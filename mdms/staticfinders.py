"""Static files that come from installed packages rather than from the repository.

plotly.js (about 4 MB) ships inside the `plotly` wheel pinned in requirements.txt; serving that
copy keeps the repository small, keeps plotly.js and the Python package on one version, and
works offline (no CDN), in runserver as in collectstatic.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, overload

from django.contrib.staticfiles.finders import BaseFinder
from django.core.checks import CheckMessage, Error
from django.core.files.storage import FileSystemStorage


def _package_file(package: str, *parts: str) -> Path:
    module = __import__(package)
    return Path(str(module.__file__)).resolve().parent.joinpath(*parts)


# Static path -> file inside an installed package.
VENDORED: dict[str, tuple[str, tuple[str, ...]]] = {
    "vendor/plotly.min.js": ("plotly", ("package_data", "plotly.min.js")),
}


class PackageDataFinder(BaseFinder):
    """Finds the files of VENDORED under their static paths."""

    def _files(self) -> dict[str, Path]:
        return {name: _package_file(package, *parts) for name, (package, parts) in VENDORED.items()}

    def check(self, **kwargs: Any) -> list[CheckMessage]:
        return [
            Error(f"{path} (static {name}) is missing: is the package installed?", id="mdms.E001")
            for name, path in self._files().items()
            if not path.is_file()
        ]

    @overload
    def find(self, path: str, find_all: Literal[False] = False, **kwargs: Any) -> str | None: ...
    @overload
    def find(self, path: str, find_all: Literal[True], **kwargs: Any) -> list[str]: ...

    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> str | list[str] | None:
        # Django 5.2 renamed `all` to `find_all`; accept both.
        find_all = find_all or bool(kwargs.get("all", False))
        found = self._files().get(path)
        if found is None or not found.is_file():
            return [] if find_all else None
        return [str(found)] if find_all else str(found)

    def list(self, ignore_patterns: Iterable[str] | None) -> Iterator[tuple[str, FileSystemStorage]]:
        for name, path in self._files().items():
            if path.is_file():
                # A storage rooted at the package folder; collectstatic copies the file under `name`.
                storage = FileSystemStorage(location=str(path.parent))
                storage.prefix = str(Path(name).parent)  # type: ignore[attr-defined]
                yield path.name, storage
