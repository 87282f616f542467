"""Benchmarks (not tests): every service call beside a hand-written asyncpg baseline.

Run ``python -m benchmarks --help``. Results are printed and written as JSON to
``benchmarks/results/`` (git-ignored).
"""
