"""Detection quality: how fast and how reliably each rollback policy reacts to a bad version.

The same seeded metric streams (counters and histograms, scraped every 15 s, with daily
traffic cycles and counter resets) go to Tollgate's sequential tests and to reimplementations of
the documented rules of Flagger, Argo Rollouts and a repeated fixed-sample test, with their
documented defaults and with the best setting of a small grid at the same false-rollback rate.
Run ``python -m bench.detection``; docs/detection.md explains the model and the figures.
"""
