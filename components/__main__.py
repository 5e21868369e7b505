"""`python3 -m components`: see components/cli.py."""

from components.cli import main

raise SystemExit(main())
