"""`python -m linkflow` is the `linkflow` command."""

from linkflow.cli import main

main()
