"""Run the command line: ``python -m hub.cli``."""

from hub.cli.main import main

raise SystemExit(main())
