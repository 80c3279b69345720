"""import_readings: Enedis JSON and CSV in, a re-run harmless, bad lines named."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

from django.core.management import call_command

from mdms.core.timeseries import readings as store


def run(path: Path, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_readings", str(path), *args, stdout=out, stderr=err, verbosity=0)
    return out.getvalue(), err.getvalue()


def write_csv(path: Path, serial: str) -> None:
    lines = ["serial,ts,energy_import_kwh,energy_export_kwh"]
    for i in range(1, 97):
        lines.append(
            f"{serial},{(dt.datetime(2026, 3, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=15 * i)).isoformat()},0.2,0"
        )
    lines.insert(5, f"{serial},not-a-time,0.2,0")  # line 6 of the file
    lines.insert(9, f"{serial},2026-03-01T00:00:00Z,-7,0")  # line 10
    lines.append("NOSUCH,2026-03-02T00:00:00Z,0.1,0")  # line 100
    path.write_text("\n".join(lines) + "\n")


def test_csv_import_stores_readings_and_names_each_bad_line(alice: Any, mongo: Any, tmp_path: Path) -> None:
    write_csv(tmp_path / "alice.csv", alice.meter.serial)
    out, err = run(tmp_path / "alice.csv")
    assert store.count_distinct_readings([alice.meter.pk]) == 96
    assert "alice.csv:line 6: ts 'not-a-time' is not ISO 8601" in err
    assert "alice.csv:line 10: energy_import_kwh = -7" in err
    assert "alice.csv:line 100: no active meter 'NOSUCH'" in err
    assert "96 readings read, 96 stored, 0 already there, 0 conflicting, 3 rejected" in out


def test_re_running_an_import_stores_nothing_new(alice: Any, mongo: Any, tmp_path: Path) -> None:
    write_csv(tmp_path / "alice.csv", alice.meter.serial)
    run(tmp_path)
    before = store.readings_for_meter(alice.meter.pk, None, None)
    out, _ = run(tmp_path)
    assert "96 readings read, 0 stored, 96 already there" in out
    assert store.count_stored_readings([alice.meter.pk]) == 96
    assert [r["ts"] for r in store.readings_for_meter(alice.meter.pk, None, None)] == [r["ts"] for r in before]


def test_enedis_load_curve_import_maps_usage_point_to_the_meter(alice: Any, mongo: Any, tmp_path: Path) -> None:
    curve = {
        "meter_reading": {
            "usage_point_id": "12345678901234",
            "start": "2026-01-10",
            "end": "2026-01-11",
            "reading_type": {"unit": "W", "measurement_kind": "power", "aggregate": "average"},
            "interval_reading": [
                {
                    "value": str(1000 + i),
                    "date": f"2026-01-10 {h:02d}:{m:02d}:00",
                    "interval_length": "PT30M",
                    "measure_type": "B",
                }
                for i, (h, m) in enumerate((h, m) for h in range(1, 24) for m in (0, 30))
            ]
            + [{"value": "oops", "date": "2026-01-11 00:00:00", "interval_length": "PT30M"}],
        }
    }
    (tmp_path / "linky.json").write_text(json.dumps(curve))
    out, err = run(tmp_path / "linky.json", "--serial", alice.meter.serial)
    rows = store.readings_for_meter(alice.meter.pk, None, None)
    assert len(rows) == 46
    assert rows[0]["ts"] == dt.datetime(2026, 1, 10, 0, 0, tzinfo=dt.UTC)  # 01:00 Paris winter time
    assert rows[0]["power_w"] == 1000.0 and rows[0]["energy_import_kwh"] == 0.5
    assert {row["origin"] for row in rows} == {"file"}
    assert "linky.json" in err and "value must be a number" in err
    assert "46 stored" in out
