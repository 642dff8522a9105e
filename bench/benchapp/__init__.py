"""A tiny app package for bench_scheduler.py: a no-op mutation and a way to schedule it."""
