"""`python -m runplane` is the `runplane` command."""

from .cli import main

main()
