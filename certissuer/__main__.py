"""``python -m certissuer`` runs the CLI."""

from certissuer import cli

cli.main()
