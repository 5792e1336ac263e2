"""Run the gateway's own command line: ``python -m federation.gateway``."""

from federation.gateway.operator import main

raise SystemExit(main())
