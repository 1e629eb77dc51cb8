"""`python -m camsvc` runs the command line."""

import sys

if sys.argv[1:2] == ["hook"]:
    # MediaMTX runs `python -m camsvc hook ...` and waits on it (a recording's stop waits
    # for segment-complete): skip the rest of the command line's imports.
    from camsvc.streaming.hook_protocol import main as hook_main

    raise SystemExit(hook_main(sys.argv[2:]))

from camsvc.cli import main

raise SystemExit(main())
