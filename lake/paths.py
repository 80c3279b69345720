"""Where the lake is: an fsspec file system and a root, from LAKE_URL and LAKE_STORAGE_OPTIONS.

LAKE_URL is a local directory (default `var/lake`) or any fsspec URL: `s3://bucket/prefix` for
an S3-compatible store (s3fs; endpoint and keys in LAKE_STORAGE_OPTIONS), `memory://lake` in
tests. Layout under the root, Hive style so Athena, DuckDB or Spark read it as a partitioned table:

    <root>/<kind>/dt=YYYY-MM-DD/part-0.parquet     the day's rows (one file per day and kind)
    <root>/<kind>/dt=YYYY-MM-DD/_manifest.json     counts and sums (names starting with _ are
                                                   ignored by Hive and Athena)
    <root>/_staging/...                            files being written, moved into place when whole
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import fsspec
from django.conf import settings
from fsspec.core import url_to_fs

DATA_FILE = "part-0.parquet"
MANIFEST_FILE = "_manifest.json"
STAGING_DIR = "_staging"


@dataclass(frozen=True)
class Lake:
    fs: fsspec.AbstractFileSystem
    root: str  # without a trailing slash, in the file system's own form (no protocol)
    url: str  # the root as a URL, for messages and for DuckDB

    def partition(self, kind: str, day: dt.date) -> str:
        return f"{self.root}/{kind}/dt={day.isoformat()}"

    def data_path(self, kind: str, day: dt.date) -> str:
        return f"{self.partition(kind, day)}/{DATA_FILE}"

    def manifest_path(self, kind: str, day: dt.date) -> str:
        return f"{self.partition(kind, day)}/{MANIFEST_FILE}"

    def staging_path(self, name: str) -> str:
        return f"{self.root}/{STAGING_DIR}/{name}"

    def display(self, path: str) -> str:
        """A path as a URL the operator can paste (s3://..., or the local path)."""
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return path if protocol in ("file", "local") else f"{protocol}://{path.lstrip('/')}"


def lake() -> Lake:
    url = str(settings.LAKE_URL).rstrip("/")
    fs, root = url_to_fs(url, **dict(settings.LAKE_STORAGE_OPTIONS))
    return Lake(fs=fs, root=str(root).rstrip("/"), url=url)
