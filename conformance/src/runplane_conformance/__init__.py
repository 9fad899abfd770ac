"""runplane's conformance suite: `pytest --pyargs runplane_conformance --runplane-backend NAME`.

The tests are the package's `test_*` modules; the pytest plugin in `plugin` runs them once per named
backend. Requirement ids and their meaning: `requirements.REQUIREMENTS` and docs/conformance.md.
"""

from __future__ import annotations

from .requirements import REQUIREMENTS

__all__ = ["REQUIREMENTS", "__version__"]

__version__ = "0.1.0"
