"""`from runplane_deadline import Runner`: agents.Runner, with a deadline on every run."""

import runplane

from .backend import DeadlineBackend, DeadlineExceeded

__all__ = ["DeadlineBackend", "DeadlineExceeded", "Runner"]

# check=False: importing this module must not load every installed plugin.
Runner = runplane.runner("deadline", check=False)
