"""The observed world as data: ``state`` (what a registry, cluster or git ref holds), built by
``repositories`` and ``world`` from the adapters in ``reconcile.adapters``. The planner reads only
``state``."""
