"""Transfer objectives: AFT, its ablations and the baselines, behind one registry.

Example::

    import fusion_aft
    obj = fusion_aft.objectives.create("aft", 384, {"all-minilm-l6-v2": 384, "glove-6b-50d": 50})
    loss, metrics = obj(student_features, teacher_features)   # [B, 384], [B, 434]
    obj.mu_by_teacher()                                       # which teacher was worth it

Names: ``aft``, ``aft_rbf``, ``aft_dense``, ``aft_no_kernel``, ``kkd``, ``kd``, ``rkd``, ``ft``,
``btune``, ``none``. Each objective's class docstring gives its formula and reference.
"""

from __future__ import annotations

# the built-in objectives register themselves on import
from fusion_aft.objectives import aft, btune, ft, kd, kkd, no_kernel, none, rkd  # noqa: F401
from fusion_aft.objectives.base import Objective
from fusion_aft.objectives.registry import (
    OBJECTIVES,
    create,
    from_config,
    get,
    list_objectives,
    option_names,
    register_objective,
)

list = list_objectives  # noqa: A001 - the public name is `objectives.list()`

__all__ = [
    "OBJECTIVES",
    "Objective",
    "create",
    "from_config",
    "get",
    "option_names",
    "register_objective",
]
