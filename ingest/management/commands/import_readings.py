"""Import historical readings: `manage.py import_readings FILE_OR_DIR [--serial SERIAL]`.

Reads Enedis/Linky load-curve JSON (the meter is its usage_point_id, or --serial) and CSV with a
header `serial,ts,energy_import_kwh[,energy_export_kwh,...]` (any canonical field names). A bad
line is reported by file and line number and the rest goes on; a re-run stores nothing new,
since the ingest pipeline's dedupe recognises the readings already stored.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from ingest import parsing, pipeline
from ingest.parsing import Reason, Rejection

BATCH_READINGS = 5000
SUFFIXES = {".csv", ".json"}


class Command(BaseCommand):
    help = "Import readings from Enedis/Linky JSON or CSV files (a file or a directory of them)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="a .json or .csv file, or a directory searched recursively")
        parser.add_argument("--serial", help="meter serial for Enedis files (default: their usage_point_id)")

    def handle(self, *args: Any, **options: Any) -> None:
        root = Path(options["path"])
        if not root.exists():
            raise CommandError(f"{root} does not exist")
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES) if root.is_dir() else [root]
        self.serial_override: str | None = options["serial"]
        self.meters = pipeline.MeterCache(refresh_s=3600)
        self.watermarks = pipeline.Watermarks()
        self.totals: Counter[str] = Counter()
        self.batch = pipeline.Batch()
        self.now = dt.datetime.now(tz=dt.UTC)
        with tqdm(total=len(files), unit="file", disable=options["verbosity"] < 1, file=self.stderr) as progress:
            for path in files:
                progress.set_postfix_str(path.name)
                self.import_file(path)
                progress.update()
        self.flush()
        t = self.totals
        self.stdout.write(
            f"{len(files)} files: {t['read']} readings read, {t['stored']} stored, "
            f"{t['duplicates']} already there, {t['conflicting_duplicates']} conflicting, {t['rejected']} rejected"
        )

    def import_file(self, path: Path) -> None:
        try:
            if path.suffix.lower() == ".csv":
                for where, serial, parsed in self.csv_rows(path):
                    self.add(path, where, serial, parsed)
            else:
                serial, parsed = self.enedis(path)
                self.add(path, "", serial, parsed)
        except (OSError, UnicodeDecodeError, Rejection, csv.Error) as exc:
            self.reject(path, "", exc.message if isinstance(exc, Rejection) else str(exc))

    def csv_rows(self, path: Path) -> Iterator[tuple[str, str, parsing.Parsed]]:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"serial", "ts"} <= set(reader.fieldnames):
                raise Rejection(Reason.MISSING_FIELD, "the header must name serial and ts")
            for row in reader:
                where = f"line {reader.line_num}"
                try:
                    obj = {k: v for k, v in row.items() if k and v not in (None, "")}
                    serial = str(obj.pop("serial", ""))
                    reading = parsing.reading_from_object(obj, serial=None, now=self.now)
                    yield where, serial, parsing.Parsed(readings=[reading])
                except Rejection as rejection:
                    self.reject(path, where, rejection.message)

    def enedis(self, path: Path) -> tuple[str, parsing.Parsed]:
        data = parsing.decode_json(path.read_bytes())
        serial = self.serial_override or parsing.enedis_usage_point(data)
        body = data.get("meter_reading", data) if isinstance(data, dict) else data
        parsed = parsing.parse_enedis({**body, "usage_point_id": serial}, serial=serial, now=self.now)
        for rejection, element in parsed.rejections:
            self.reject(path, f"interval_reading {element!r:.80}", rejection.message)
        return serial, parsed

    def add(self, path: Path, where: str, serial: str, parsed: parsing.Parsed) -> None:
        if not parsed.readings:
            return
        meter = self.meters.lookup(serial)
        if meter is None or (not meter.accepting and meter.removed_at is None):
            self.reject(path, where, f"no active meter {serial!r} in the registry")
            return
        # An exchanged meter's file keeps only its own part of time; the rest is named line by line.
        parsed = pipeline.admitted(parsing.Parsed(readings=parsed.readings), meter)
        for rejection, _ in parsed.rejections:
            self.reject(path, where, rejection.message)
        if not parsed.readings:
            return
        self.totals["read"] += len(parsed.readings)
        pipeline.add_parsed(parsed, self.batch, meter_pk=meter.pk, received_at=dt.datetime.now(tz=dt.UTC))
        if len(self.batch.readings) >= BATCH_READINGS:
            self.flush()

    def flush(self) -> None:
        if self.batch.readings:
            pipeline.flush(self.batch, self.watermarks, live=False)
            self.totals.update({k: self.batch.counts[k] for k in ("stored", "duplicates", "conflicting_duplicates")})
        self.batch = pipeline.Batch()

    def reject(self, path: Path, where: str, message: str) -> None:
        self.totals["rejected"] += 1
        self.stderr.write(f"{path}{':' + where if where else ''}: {message}")
