"""Benchmarks (not tests): ``python -m bench`` or ``make bench``; see ``bench/daemon.py``."""
