"""The benchmark suite: every performance figure of the project, each beside its target.

Run all of it with ``python -m benchmarks`` (``--only NAME,...`` for some, ``--quick`` for a
smaller, faster pass); see ``benchmarks/RESULTS.md`` for the last full run. Figures are
measured side by side in one run, best of several interleaved repeats, because the machines
this runs on are noisy; nothing here asserts a time.
"""
