"""Hypothesis profiles for the property tests. ``reconcile-ci`` (the default) is deterministic:
examples derive from each test's own code, no example database, no deadline (a shared 2-core
machine's timing is no signal). ``reconcile-explore`` draws fresh examples and keeps failures in
the local database: RECONCILE_HYPOTHESIS_PROFILE=reconcile-explore to hunt for new bugs. The
tests take it as their settings' parent, so this loads no profile for the rest of the suite."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("reconcile-ci", derandomize=True, database=None, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("reconcile-explore", derandomize=False, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])

PROFILE = os.environ.get("RECONCILE_HYPOTHESIS_PROFILE", "reconcile-ci")
