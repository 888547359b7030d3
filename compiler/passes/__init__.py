"""Compiler passes: plain functions ``pass(graph, ctx) -> graph``, each a module with one job."""

from .initialize import initialize
from .pipeline import CompileContext, PassRecord, commit_weights, run_pipeline
from .propagate_shapes import propagate_shapes
from .validate import validate

#: What ``model.build`` runs: infer every size, check the result, create missing weights.
BUILD_PIPELINE = [propagate_shapes, validate, initialize]

__all__ = ["BUILD_PIPELINE", "CompileContext", "PassRecord", "commit_weights", "initialize",
           "propagate_shapes", "run_pipeline", "validate"]

from .fold_batch_norm import fold_batch_norm  # noqa: E402
from .fold_pad import fold_pad  # noqa: E402
from .fuse import fuse  # noqa: E402
from .fuse_add_norm import fuse_add_norm  # noqa: E402
from .plan_memory import plan_memory  # noqa: E402
from .prepare_conv import prepare_conv  # noqa: E402
from .prepare_dense import prepare_dense  # noqa: E402
from .remove_identities import remove_identities  # noqa: E402
from .schedule import schedule  # noqa: E402
from .sink_transposes import sink_transposes  # noqa: E402

#: What ``compile`` runs before handing the graph to the runtime (which then generates code).
#: Identities go first, so the pattern-matching passes see real producer -> consumer pairs;
#: transposes are sunk (and cancelled) before fusion, so the epilogues they hid still fuse;
#: explicit pads fold into the window op after them (the pad then sits next to its reader).
COMPILE_PIPELINE = [*BUILD_PIPELINE, remove_identities, sink_transposes, fold_pad,
                    fold_batch_norm, fuse, fuse_add_norm, validate, prepare_dense, prepare_conv,
                    schedule, plan_memory]
__all__ += ["COMPILE_PIPELINE", "fold_batch_norm", "fold_pad", "fuse", "fuse_add_norm",
            "plan_memory", "prepare_conv", "prepare_dense", "remove_identities", "schedule",
            "sink_transposes"]
