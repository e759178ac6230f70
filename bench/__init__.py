"""Benchmarks: each one times a hub operation beside its baseline, in the same run.

Speed is proven here, never by timed assertions in the tests. A benchmark
measures its baseline in the same process and loop as the operation, prints
both figures and their ratio, and states whether the target holds; it exits 0
either way. `bench.harness` holds what they share.
"""
