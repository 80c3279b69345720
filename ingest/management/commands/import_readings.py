"""Import historical readings: `manage.py import_readings FILE_OR_DIR [--serial SERIAL]`.

Reads Enedis/Linky load-curve JSON (the meter is its usage_point_id, or --serial) and CSV with a
header `serial,ts,energy_import_kwh[,energy_export_kwh,...]` (any canonical field names), and
one-minute power files in local time, the UCI household power format (`ingest.minute_power`: the
meter is --serial, the times are in --zone, minutes are summed into --interval-s intervals). A bad
line is reported by file and line number and the rest goes on; a re-run stores nothing new,
since the ingest pipeline's dedupe recognises the readings already stored.

Then the imported range is validated and judged as the live feed would have been (VEE, rollups,
anomaly baselines and detection: mdms.core.reprocessing), with progress; --no-reprocess leaves it
to a later `manage.py reprocess`.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from ingest import minute_power, parsing, pipeline
from ingest.parsing import Reason, Rejection
from mdms.core.localtime import local_day
from mdms.core.reading_quality import SOURCE_FILE
from mdms.core.reprocessing import reprocess

BATCH_READINGS = 5000
SUFFIXES = {".csv", ".json", ".txt"}  # .txt: the UCI original's household_power_consumption.txt


class Command(BaseCommand):
    help = "Import readings from Enedis/Linky JSON or CSV files (a file or a directory of them)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="a .json or .csv file, or a directory searched recursively")
        parser.add_argument(
            "--serial", help="meter serial for Enedis files (default: their usage_point_id); required for minute files"
        )
        parser.add_argument(
            "--zone", help="time zone of a minute file's local times (default: the utility's TIME_ZONE)"
        )
        parser.add_argument(
            "--interval-s", type=int, default=900, help="interval a minute file is stored at (default 900: 15 minutes)"
        )
        parser.add_argument(
            "--no-reprocess", action="store_true", help="skip VEE, rollups and detection over the imported range"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        root = Path(options["path"])
        if not root.exists():
            raise CommandError(f"{root} does not exist")
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES) if root.is_dir() else [root]
        self.serial_override: str | None = options["serial"]
        self.verbosity: int = options["verbosity"]
        try:
            self.zone = ZoneInfo(options["zone"] or str(settings.TIME_ZONE))
        except (ZoneInfoNotFoundError, ValueError):
            raise CommandError(f"--zone {options['zone']!r} is not a known time zone") from None
        self.interval_s: int = options["interval_s"]
        if self.interval_s % 60 or not 60 <= self.interval_s <= 3600 or 3600 % self.interval_s:
            raise CommandError(f"--interval-s {self.interval_s} must be whole minutes dividing an hour (60..3600)")
        self.meters = pipeline.MeterCache(refresh_s=3600)
        self.watermarks = pipeline.Watermarks()
        self.totals: Counter[str] = Counter()
        self.batch = pipeline.Batch()
        self.now = dt.datetime.now(tz=dt.UTC)
        # Per meter, the local days its imported readings fall in: what is reprocessed afterwards.
        self.days: dict[int, tuple[dt.date, dt.date]] = {}
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
        if t["minutes"]:
            self.stdout.write(
                f"minute files: {t['minutes']} minutes ({t['minutes_missing']} marked missing) in "
                f"{t['intervals']} intervals of {self.interval_s} s; {t['intervals_incomplete']} intervals with "
                "too few minutes were not stored (gaps for the VEE)"
            )
        if not options["no_reprocess"]:
            self.reprocess(progress_shown=options["verbosity"] >= 1)

    def reprocess(self, *, progress_shown: bool) -> None:
        """VEE, rollups, baselines and detection over each meter's imported days (meters sharing days together)."""
        by_range: dict[tuple[dt.date, dt.date], list[int]] = defaultdict(list)
        for meter_pk, days in self.days.items():
            by_range[days].append(meter_pk)
        bars: dict[str, tqdm[Any]] = {}

        def progress(stage: str, done: int, total: int) -> None:
            bar = bars.get(stage)
            if bar is None:
                bar = bars[stage] = tqdm(total=total, desc=stage, unit="day", disable=not progress_shown,
                                         file=self.stderr)  # fmt: skip
            bar.n = done
            bar.refresh()

        for (first_day, last_day), meter_pks in sorted(by_range.items()):
            try:
                reprocess(meter_pks=meter_pks, first_day=first_day, end_day=last_day + dt.timedelta(days=1),
                          progress=progress)  # fmt: skip
            finally:
                for bar in bars.values():
                    bar.close()
                bars.clear()
            self.stdout.write(f"{len(meter_pks)} meters, {first_day} to {last_day}: validated, rolled up and judged")

    def import_file(self, path: Path) -> None:
        try:
            with path.open(encoding="utf-8-sig", errors="replace") as fh:
                minute_file = minute_power.is_minute_power_header(fh.readline())
            if minute_file:
                self.minute_rows(path)
            elif path.suffix.lower() == ".csv":
                for where, serial, parsed in self.csv_rows(path):
                    self.add(path, where, serial, parsed)
            elif path.suffix.lower() == ".txt":
                raise Rejection(Reason.BAD_SHAPE, "a .txt file must be a UCI household power file (Date;Time;...)")
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

    def minute_rows(self, path: Path) -> None:
        """A one-minute power file: readings go on in blocks, each bad line is reported by number."""
        if not self.serial_override:
            raise Rejection(Reason.MISSING_FIELD, "a minute power file names no meter: give --serial")
        serial = self.serial_override
        minutes = minute_power.MinuteFile(zone=self.zone, interval_s=self.interval_s, now=self.now)
        block = parsing.Parsed()
        # Two million lines take minutes: a second bar follows the file's bytes.
        with (
            path.open(newline="", encoding="utf-8-sig") as fh,
            tqdm(
                total=path.stat().st_size, unit="B", unit_scale=True, disable=self.verbosity < 1, file=self.stderr,
                desc=path.name, leave=False,
            ) as progress,
        ):  # fmt: skip
            for item in minutes.parse(_counting(fh, progress)):
                if isinstance(item, parsing.Reading):
                    block.readings.append(item)
                    if len(block.readings) >= BATCH_READINGS:
                        self.add(path, "", serial, block)
                        block = parsing.Parsed()
                else:
                    number, rejection = item
                    self.reject(path, f"line {number}", rejection.message)
        self.add(path, "", serial, block)
        stats = minutes.stats
        self.totals.update(
            minutes=stats.minutes,
            minutes_missing=stats.minutes_missing,
            intervals=stats.intervals,
            intervals_incomplete=stats.intervals_incomplete,
        )

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
        pipeline.add_parsed(
            parsed, self.batch, meter_pk=meter.pk, received_at=dt.datetime.now(tz=dt.UTC), origin=SOURCE_FILE
        )
        for reading in parsed.readings:
            # The local day the interval starts in (ts is its end).
            day = local_day(reading.ts - dt.timedelta(seconds=reading.interval_s or 900))
            first, last = self.days.get(meter.pk, (day, day))
            self.days[meter.pk] = (min(first, day), max(last, day))
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


def _counting(lines: Iterator[str], progress: Any) -> Iterator[str]:
    """The lines, advancing the progress bar by their bytes every 10,000 lines."""
    pending = 0
    for number, line in enumerate(lines):
        pending += len(line)
        if number % 10_000 == 9_999:
            progress.update(pending)
            pending = 0
        yield line
    progress.update(pending)
