"""Run SQL over the Parquet lake with DuckDB and print a table: `make lake-query [SQL=file.sql]`.

By default, consumption per region per local day (lake/queries/consumption_by_region.sql).
A query names the lake's root `{lake_root}`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
from django.core.management.base import BaseCommand, CommandError, CommandParser

from lake.paths import lake
from lake.query import DEFAULT_QUERY, format_table, lake_is_empty, run_sql


class Command(BaseCommand):
    help = "Query the data lake with DuckDB SQL (default: consumption per region per local day)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sql", type=Path, default=DEFAULT_QUERY, help="a .sql file; {lake_root} is the lake")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["sql"]
        if not path.is_file():
            raise CommandError(f"no SQL file at {path}")
        where = lake()
        if lake_is_empty(where):
            raise CommandError(
                f"the data lake at {where.url} is empty: no day has been exported yet. Fill it with "
                "`.venv/bin/python manage.py lake_export --pending` (every finished day MongoDB holds), "
                "or `lake_export --from YYYY-MM-DD --to YYYY-MM-DD`; the nightly job does it at 03:10."
            )
        try:
            result = run_sql(path.read_text(), where)
        except duckdb.Error as exc:
            raise CommandError(f"{path}: {exc}") from exc
        self.stdout.write(format_table(result))
        self.stdout.write(f"({len(result.rows)} row(s); lake {where.url})")
