"""`python -m bench [NAME ...]`: run the benchmarks (all by default) against databases of their own.

The benchmarks use the PostgreSQL database and the MongoDB database named in the configuration
with `_bench` appended, and Redis database 10, so that they never touch the demo's or the tests' data.
"""

from __future__ import annotations

import argparse
import os
import sys
from urllib.parse import urlsplit, urlunsplit

BENCHMARKS = [
    "ingest",
    "storage",
    "pipeline",
    "detect",
    "billing",
    "portal",
    "reads_under_ingest",
    "forecast",
    "commands",
    "realdata",
    "demo",
    "scale",
]


def _with_bench_database(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}_bench"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})")
    args = parser.parse_args()
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {BENCHMARKS}")

    from mdms import config

    os.environ["DATABASE_URL"] = _with_bench_database(config.env("DATABASE_URL", config.DEFAULT_DATABASE_URL))
    os.environ["MONGODB_URI"] = _with_bench_database(config.env("MONGODB_URI", config.DEFAULT_MONGODB_URI))
    # Redis too: a database of its own (BENCH_REDIS_DB, default 10), never the demo's streams and counters.
    redis_url = urlsplit(config.env("REDIS_URL", config.DEFAULT_REDIS_URL))
    os.environ["REDIS_URL"] = urlunsplit(redis_url._replace(path=f"/{int(os.environ.get('BENCH_REDIS_DB', '10'))}"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mdms.settings")

    import django
    import psycopg
    from django.conf import settings

    db = config.parse_database_url("DATABASE_URL", config.DEFAULT_DATABASE_URL)
    with psycopg.connect(host=db.host, port=db.port, user=db.user, password=db.password, dbname="postgres",
                         autocommit=True) as conn:  # fmt: skip
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db.name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{db.name}"')
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print(f"bench: PostgreSQL {settings.DATABASES['default']['NAME']}, MongoDB {settings.MONGODB_DB}")

    from bench import common

    for name in args.names or BENCHMARKS:
        module = __import__(f"bench.{name}", fromlist=["run"])
        results = module.run()
        for key, value in results.items():
            print(f"  {key} = {value}")
    common.write_report()
    print(f"bench: wrote {common.REPORT.name} and bench/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
