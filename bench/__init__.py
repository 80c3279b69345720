"""Benchmarks behind `make bench`: each prints its figures and records them (see bench/common.py)."""
