"""`python -m camsvc` runs the command line."""

from camsvc.cli import main

raise SystemExit(main())
