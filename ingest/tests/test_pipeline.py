"""The ingest pipeline without MQTT: messages in, MongoDB documents, dead letters and counters out."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ingest import counters, pipeline
from mdms.core import services, stored_batches
from mdms.core.models import Meter
from mdms.core.mqtt import topics
from mdms.core.timeseries import readings as store

T0 = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)


def message(serial: str, payload: Any, kind: topics.Kind = topics.Kind.READINGS) -> pipeline.Message:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return pipeline.Message(topic=topics.topic(serial, kind), payload=raw, received_at=dt.datetime.now(tz=dt.UTC))


def numbered(n: int, *, start: int = 0, energy: float = 0.25) -> list[dict[str, Any]]:
    return [
        {"ts": (T0 + dt.timedelta(minutes=15 * i)).isoformat(), "interval_s": 900, "energy_import_kwh": energy}
        for i in range(start, start + n)
    ]


def ingest(messages: list[pipeline.Message], watermarks: pipeline.Watermarks | None = None) -> pipeline.Batch:
    batch = pipeline.Batch()
    meters = pipeline.MeterCache()
    for m in messages:
        pipeline.process_message(m, batch, meters)
    pipeline.flush(batch, watermarks or pipeline.Watermarks())
    return batch


def test_interval_block_is_stored_with_unit_named_fields(alice: Any, mongo: Any) -> None:
    ingest([message(alice.meter.serial, numbered(4))])
    rows = store.readings_for_meter(alice.meter.pk, T0, T0 + dt.timedelta(days=1))
    assert [row["ts"] for row in rows] == [T0 + dt.timedelta(minutes=15 * i) for i in range(4)]
    assert rows[0]["meter"] == alice.meter.pk
    assert rows[0]["energy_import_kwh"] == 0.25 and rows[0]["interval_s"] == 900
    assert rows[0]["received_at"].tzinfo is not None


def test_resending_the_same_readings_is_counted_as_duplicates_and_stores_nothing(alice: Any, mongo: Any) -> None:
    first = ingest([message(alice.meter.serial, numbered(10))])
    before = store.readings_for_meter(alice.meter.pk, None, None)
    # A fresh Watermarks is a restarted worker: it must still recognise the copies.
    again = ingest([message(alice.meter.serial, numbered(10))], pipeline.Watermarks())
    assert first.counts["stored"] == 10
    assert (again.counts["stored"], again.counts["duplicates"]) == (0, 10)
    assert store.count_stored_readings([alice.meter.pk]) == 10
    after = store.readings_for_meter(alice.meter.pk, None, None)
    assert [(r["ts"], r["energy_import_kwh"]) for r in after] == [(r["ts"], r["energy_import_kwh"]) for r in before]


def test_copies_within_one_batch_are_stored_once(alice: Any, mongo: Any) -> None:
    batch = ingest([message(alice.meter.serial, numbered(3)), message(alice.meter.serial, numbered(3))])
    assert (batch.counts["stored"], batch.counts["duplicates"]) == (3, 3)


def test_conflicting_duplicate_is_stored_and_counted_but_reads_keep_the_first(alice: Any, mongo: Any) -> None:
    ingest([message(alice.meter.serial, numbered(2, energy=0.25))])
    batch = ingest([message(alice.meter.serial, numbered(2, energy=0.75))])
    assert batch.counts["conflicting_duplicates"] == 2
    assert store.count_stored_readings([alice.meter.pk]) == 4
    assert store.count_distinct_readings([alice.meter.pk]) == 2
    assert [r["energy_import_kwh"] for r in store.readings_for_meter(alice.meter.pk, None, None)] == [0.25, 0.25]


def test_duplicate_that_slips_into_storage_never_changes_reads(alice: Any, mongo: Any) -> None:
    documents = [
        store.reading_document(
            meter_pk=alice.meter.pk,
            ts=T0,
            received_at=T0 + dt.timedelta(seconds=s),
            values={"power_w": 100.0 + s},
            interval_s=None,
        )
        for s in (5, 1, 9)
    ]
    store.insert_readings(documents)
    rows = store.readings_for_meter(alice.meter.pk, T0, T0 + dt.timedelta(seconds=1))
    assert [r["power_w"] for r in rows] == [101.0]  # the first received
    assert store.count_distinct_readings([alice.meter.pk]) == 1


def test_unknown_and_disabled_meters_and_bad_topics_become_dead_letters(alice: Any, bob: Any, mongo: Any) -> None:
    services.meter_disable(meter=bob.meter)
    batch = ingest(
        [
            message("NOSUCHMETER", numbered(1)),
            message(bob.meter.serial, numbered(1)),
            pipeline.Message(topic="elsewhere/x", payload=b"{}", received_at=dt.datetime.now(tz=dt.UTC)),
            message(alice.meter.serial, {"ts": T0.isoformat(), "power_w": 5, "serial": bob.meter.serial}),
        ]
    )
    assert Meter.objects.get(pk=bob.meter.pk).status == Meter.Status.DISABLED
    assert dict(batch.reasons) == {"unknown_meter": 1, "disabled_meter": 1, "unknown_topic": 1, "serial_mismatch": 1}
    assert store.dead_letters_by_reason() == dict(batch.reasons)
    assert store.count_stored_readings() == 0


def test_dead_letter_keeps_binary_payload_as_bytes_and_names_the_bad_element(alice: Any, mongo: Any) -> None:
    block = [*numbered(1), {"ts": T0.isoformat(), "power_w": "NaN"}]
    ingest([message(alice.meter.serial, b"\x00\xff garbage"), message(alice.meter.serial, block)])
    letters = {letter["reason_code"]: letter for letter in store.recent_dead_letters()}
    assert letters["bad_encoding"]["payload"] == b"\x00\xff garbage"
    assert "NaN" in letters["not_finite"]["element"]
    assert store.count_stored_readings() == 1


def test_events_and_replies_are_stored_and_a_resent_reply_is_a_duplicate(alice: Any, mongo: Any) -> None:
    serial = alice.meter.serial
    reply = {"id": "cmd-1", "ts": T0.isoformat(), "register_import_kwh": 1234.5}
    ingest([message(serial, {"ts": T0.isoformat(), "type": "power_off"}, topics.Kind.EVENTS)])
    ingest([message(serial, reply, topics.Kind.REPLIES)])
    again = ingest([message(serial, reply, topics.Kind.REPLIES)])
    assert again.counts["duplicates"] == 1
    assert [e["type"] for e in store.events_for_meter(alice.meter.pk, None, None)] == ["power_off"]
    stored = store.reply_for(alice.meter.pk, "cmd-1")
    assert stored is not None and stored["register_import_kwh"] == 1234.5


def test_flush_counts_in_redis_and_hands_the_batch_bounds_on(alice: Any, mongo: Any) -> None:
    before = counters.snapshot()
    last_id = stored_batches.connection().xrevrange(stored_batches.STREAM, count=1)
    ingest([message(alice.meter.serial, numbered(3)), message(alice.meter.serial, b"junk")])
    after = counters.snapshot()
    assert after["stored"] - before["stored"] == 3
    assert after["dead_lettered"] - before["dead_lettered"] == 1
    assert after["received"] - before["received"] == 2
    assert after["dead_letters_by_reason"]["bad_json"] >= 1
    start = last_id[0][0] if last_id else "-"
    entries = [fields for _, fields in stored_batches.connection().xrange(stored_batches.STREAM, min=start)]
    mine = [e for e in entries if e["meters"] == str(alice.meter.pk) and e["kind"] == "readings"]
    assert mine[-1]["min_ts"] == T0.isoformat()
    assert mine[-1]["max_ts"] == (T0 + dt.timedelta(minutes=30)).isoformat()


def test_readings_sent_with_a_reads_answer_are_stored_with_their_source(alice: Any, mongo: Any) -> None:
    serial = alice.meter.serial
    answer = {"id": "cmd-7", "ts": T0.isoformat(), "register_import_kwh": 1234.5, "readings": [*numbered(2), {"ts": 1}]}
    batch = ingest([message(serial, answer, topics.Kind.REPLIES)])
    # A bad element is a dead letter of its own; the good ones and the reply itself are stored.
    assert batch.counts["stored"] == 2 and len(batch.dead_letters) == 1
    assert [r.get("origin") for r in store.readings_for_meter(alice.meter.pk, None, None)] == ["on_demand"] * 2
    assert store.reply_for(alice.meter.pk, "cmd-7") is not None


def test_readings_over_mqtt_store_no_source_field_since_mqtt_is_the_default(alice: Any, mongo: Any) -> None:
    ingest([message(alice.meter.serial, numbered(2))])
    assert all("origin" not in r and "quality" not in r for r in store.readings_for_meter(alice.meter.pk, None, None))
