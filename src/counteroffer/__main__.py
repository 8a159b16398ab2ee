"""``python -m counteroffer`` runs the CLI."""

from counteroffer.cli.app import main

main()
