"""`runplane demo`: a durable run, streamed live, killed with SIGKILL part way, then resumed."""

from .parent import run_demo

__all__ = ["run_demo"]
