"""The sharding script: the keys it applies obey MongoDB's rules, and it refuses a non-mongos clearly."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from mdms.core import timeseries
from mdms.core.timeseries import _INDEXES, _TIMESERIES, sharding


def test_time_series_keys_use_only_the_meta_and_time_fields_with_time_last() -> None:
    for name, options in _TIMESERIES.items():
        key = list(sharding.SHARD_KEYS[name])
        assert key[0] == options["metaField"], name
        assert key[-1] == options["timeField"], name
        assert set(key) <= {options["metaField"], options["timeField"]}, name


def test_every_unique_index_of_a_sharded_collection_starts_with_its_shard_key() -> None:
    for name, key in sharding.SHARD_KEYS.items():
        for fields, options in _INDEXES.get(name, []):
            if options.get("unique"):
                assert [field for field, _ in fields][: len(key)] == list(key), name


def test_dry_run_prints_every_command(mongo: Any) -> None:
    out = io.StringIO()
    call_command("mongo_shard", stdout=out)
    text = out.getvalue()
    assert f'"enableSharding": "{timeseries.db().name}"' in text
    assert f'"shardCollection": "{timeseries.db().name}.readings", "key": {{"meter": 1, "ts": 1}}' in text
    assert text.count("shardCollection") == len(sharding.SHARD_KEYS)


def test_execute_against_a_replica_set_says_it_needs_a_mongos(mongo: Any) -> None:
    with pytest.raises(CommandError, match="mongos"):
        call_command("mongo_shard", "--execute", stdout=io.StringIO())
