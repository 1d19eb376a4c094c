"""Development tools: never shipped in the wheel (pyproject excludes ``connectors.devtools*``).

They run from a source checkout only — the local Tryton sandbox of the demo, the tests and the
benchmarks (``tryton/``) and its sample data. Nothing in the product imports them, except the
``demo`` command, which says it needs a source checkout when they are missing. They live under
``connectors`` (the lowest layer) so that every layer above, ``bench`` and ``tests`` may use them.
"""
