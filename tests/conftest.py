"""Shared test configuration: hypothesis profiles, a fresh cache, verify after every pass.

``ci`` (the default) keeps property tests quick; ``long`` searches much harder. Pick one with
``pytest --hypothesis-profile=long`` or the ``HYPOTHESIS_PROFILE`` environment variable.
"""

import os
import tempfile

# A fresh compiled-code cache per test session: results never depend on what an earlier run (or
# another checkout) left in ~/.cache/deferc. Set before compiler/runtime are imported. Each
# pytest-xdist worker gets its own folder under the session's: one cache lock serializes every
# compilation of the processes sharing a folder, so with one shared folder a worker waited for
# the other's compiles (the 2-core run used ~1.25 cores).
os.environ.setdefault("DEFERC_CACHE_DIR", tempfile.mkdtemp(prefix="deferc-test-cache-"))
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["DEFERC_CACHE_DIR"] = os.path.join(os.environ["DEFERC_CACHE_DIR"],
                                                  os.environ["PYTEST_XDIST_WORKER"])
# Every pipeline run in the tests checks the IR (``compiler.ir.verify``) after each pass.
os.environ.setdefault("DEFERC_VERIFY_EACH", "1")
# The suite tests compiled code against the reference: plans compile before answering. The lower
# tier and the switch (``tier="auto"``, the default for users) are tested in test_tiers.py.
os.environ.setdefault("DEFERC_TIER", "jit")

from hypothesis import HealthCheck, settings

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}

settings.register_profile("ci", max_examples=25, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("long", max_examples=1000, print_blob=True, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
