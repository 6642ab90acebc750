"""digest: a self-hosted newsletter digest sender for news sites.

Data flows one way, one package per stage (README, "Layout")::

    articles ─┐
              ├─► delivery.plan ─► compose ─► render ─► transport ─► delivery.results
    readers  ─┘      (who, what)    (pure)    (pure)     (SMTP)        (the ledger)

``run`` strings the stages together; ``cli`` and ``web`` are the ways in; ``api`` is the typed
Python interface for integrators. Each package's docstring says which packages it may import,
and ``tests/test_architecture.py`` holds every module to it.
"""

__version__ = "0.1.0"
