"""Reports on finished runs: μ attribution per teacher and per feature (tables, JSON, charts), and
which teachers a run could drop (:func:`drop_suggestions`).

Example::

    from fusion_aft.report import attribution
    rep = attribution("runs/rt-aft", top=5)
    [(t["teacher"], t["share"], t["mean"]) for t in rep["teachers"]]
"""

from __future__ import annotations

from fusion_aft.report.attribution import attribution, load_objective, plot_attribution
from fusion_aft.report.drop import drop_suggestions

__all__ = ["attribution", "drop_suggestions", "load_objective", "plot_attribution"]
