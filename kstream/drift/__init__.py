"""Drift monitoring: the training reference, windows of live data compared with it, change detection and alerts.

Modules:

- ``reference``: the binned training distribution and PSI (:class:`reference.FeatureReference`)
- ``pagehinkley``: the two-sided Page-Hinkley change detector
- ``monitor``: :class:`monitor.DriftMonitor`, windows of a prediction stream against the reference
- ``alerts``: alert rules on drift windows
"""
