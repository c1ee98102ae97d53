"""Private building blocks of ``python -m bench.loadtest``: one idea per module.

``_mix`` (route mix), ``_verify`` (body checks), ``_hist`` (HDR latency histogram),
``_client`` (load-generating worker processes), ``_server`` (the server under test and its
RSS), ``_runner`` (rounds, progress), ``_results`` (figures and targets), ``_report`` and
``_plot`` (what a person reads).
"""
