"""``python -m certissuer`` runs the CLI."""

from certissuer.cli import main

main()
