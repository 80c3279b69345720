"""SQL over the lake with DuckDB, in place, the way Athena reads the same files.

A query file names the lake as `{lake_root}`; it is replaced by the root of LAKE_URL. DuckDB
reads the files through the lake's own fsspec file system (registered with DuckDB), so the same
query runs against a local directory, an S3 bucket (with LAKE_STORAGE_OPTIONS) or memory://.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from lake.paths import Lake, lake

QUERIES_DIR = Path(__file__).resolve().parent / "queries"
DEFAULT_QUERY = QUERIES_DIR / "consumption_by_region.sql"


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def lake_is_empty(where: Lake) -> bool:
    return not where.fs.glob(f"{where.root}/*/dt=*/*.parquet")


def duckdb_root(where: Lake) -> str:
    """The root as DuckDB should see it: a local path, or protocol://path for a registered fsspec file system."""
    protocol = where.fs.protocol if isinstance(where.fs.protocol, str) else where.fs.protocol[0]
    if protocol in ("file", "local"):
        return where.root
    return f"{protocol}://{where.root.lstrip('/')}"


def run_sql(sql: str, where: Lake | None = None) -> QueryResult:
    where = where or lake()
    connection = duckdb.connect(":memory:")
    try:
        protocol = where.fs.protocol if isinstance(where.fs.protocol, str) else where.fs.protocol[0]
        if protocol not in ("file", "local"):
            connection.register_filesystem(where.fs)
        cursor = connection.execute(sql.replace("{lake_root}", duckdb_root(where)))
        columns = [column[0] for column in cursor.description or []]
        return QueryResult(columns=columns, rows=[tuple(row) for row in cursor.fetchall()])
    finally:
        connection.close()


def format_table(result: QueryResult) -> str:
    """A plain text table: columns aligned, numbers to the right."""
    cells = [[_cell(value) for value in row] for row in result.rows]
    widths = [max([len(name), *(len(row[k]) for row in cells)]) for k, name in enumerate(result.columns)]
    numeric = [all(isinstance(row[k], int | float) for row in result.rows) and result.rows for k in range(len(widths))]

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if numeric[k] else v.ljust(w) for k, (v, w) in enumerate(zip(values, widths, strict=True))
        )

    out = [line(result.columns), "  ".join("-" * w for w in widths), *(line(row) for row in cells)]
    return "\n".join(text.rstrip() for text in out)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.3f}"
    return str(value)
