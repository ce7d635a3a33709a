"""`python -m edge` = the `edge` command."""

from .cli import main

main()
