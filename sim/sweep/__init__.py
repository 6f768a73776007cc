"""Design-space sweeps: points, the results store, executors, recommendation and the report.

A sweep crosses array configurations with models, quantizers and checkpoints
(:func:`sim.sweep.grid.expand`), evaluates every point with one function
(:func:`sim.sweep.evaluate.evaluate_point`) on local processes or a Dask cluster
(:mod:`sim.sweep.executors`), and keeps one row per point in an SQLite store
(:class:`sim.sweep.store.ResultStore`) that resumes a killed sweep.
:mod:`sim.sweep.report` draws the plots and the HTML page; :mod:`sim.sweep.recommend` picks a
configuration.
"""

from sim.sweep.errors import SweepError
from sim.sweep.spec import KEY_FIELDS, PointSpec
from sim.sweep.store import ResultStore

__all__ = ["SweepError", "PointSpec", "KEY_FIELDS", "ResultStore"]
