"""The meter simulator: the demo's data source and the benchmarks' load.

Layers, each usable alone: `profiles` (who lives behind a meter), `load` (the pure, seeded
measurement model), `faults` (what goes wrong, with labels for scoring detection), `meter`
(readings, registers, events and on-demand reads of one meter), `runner` (many meters over MQTT
from one thread).
"""
