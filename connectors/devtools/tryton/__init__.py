"""The local Tryton 8.2 sandbox (``sandbox.py``) and the builder of its template databases
(``sandbox_build.py``, run by the Tryton virtualenv's Python)."""
