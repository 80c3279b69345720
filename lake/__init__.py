"""The data lake: each finished local day of raw readings and events as Parquet, and raw tiering.

See docs/lake.md. export.py writes a day, verify.py checks it against MongoDB, tiering.py removes
verified old days from MongoDB, restore.py reads them back; LakeDay (models.py) is the state the
operator sees. Imports: this app uses mdms.core only; billing calls it (restore before a recompute).
"""
