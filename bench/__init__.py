"""electron's benchmarks: run ``python -m bench`` for the suite, ``python -m bench.<case>``
for one case. Every figure is a ratio against a baseline measured in the same run."""
