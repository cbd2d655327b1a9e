"""Looking at runs: summaries, the live view, the report and its figures.

Modules:

- ``summaries``: volume, speed, latency and quality of a run
- ``watch``: what the detectors have written so far, as a status line or a figure
- ``report``: a run's predictions joined to the truth, figures and a one-page report
- ``plots``: the figures themselves
- ``adaptation``: static, retrained and online runs on one stream compared (the experiment notebook's work)
"""
