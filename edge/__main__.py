"""`python -m edge` = the `edge` command."""

from edge.app.cli import main

main()
