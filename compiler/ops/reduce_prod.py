"""``prod``: the product over attr ``axis`` (ONNX ReduceProd), with the other reductions' shape
rule; no numba kernel of its own (rare in real models): its NumPy reference runs."""

from __future__ import annotations

import numpy as np

from .primitives import _prim, _reduction_ref, _reduction_rule
from .registry import REDUCTION

_prim("prod", _reduction_rule("prod"), _reduction_ref(np.prod), traits=(REDUCTION,),
      kernel="numpy:prod", doc="prod over attr `axis` (None: all; a tuple: several), `keepdims`.")
