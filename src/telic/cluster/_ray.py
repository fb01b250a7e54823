"""Ray's modules, typed as ``Any``: Ray's own annotations are partial (pyright in strict mode
reports every use), so telic types its side of each call and treats Ray as dynamic."""

from __future__ import annotations

import importlib
from typing import Any

ray: Any = importlib.import_module("ray")
exceptions: Any = importlib.import_module("ray.exceptions")
cloudpickle: Any = importlib.import_module("ray.cloudpickle")
strategies: Any = importlib.import_module("ray.util.scheduling_strategies")
