"""Helpers of `bench/brain_bench.py`: infrastructure, processes, Kafka I/O and the benchmarks.

They live in this sub-package (not next to `brain_bench.py`) because `make bench` runs every
`bench/*.py` file as a script.
"""
