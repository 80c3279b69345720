-- Consumption per region per local day, from the lake's Parquet files alone, as Athena would
-- answer it over the same layout (a Hive-partitioned table, partition column dt).
-- {lake_root} is replaced by the lake's root (LAKE_URL) by `make lake-query` / manage.py lake_query.
-- Energies are as the meters reported them, before any meter multiplier; kWh.
SELECT
    dt                               AS local_day,
    coalesce(region_code, '(none)')  AS region,
    count(DISTINCT meter_pk)         AS meters,
    count(*)                         AS readings,
    round(sum(energy_import_kwh), 3) AS import_kwh,
    round(sum(energy_export_kwh), 3) AS export_kwh
FROM read_parquet('{lake_root}/readings/dt=*/*.parquet', hive_partitioning = true)
GROUP BY ALL
ORDER BY local_day, region;
