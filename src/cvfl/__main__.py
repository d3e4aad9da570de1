"""``python -m cvfl`` runs the command line."""

from cvfl.cli.app import main

main()
