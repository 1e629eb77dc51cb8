"""`python -m camsvc` runs the command line."""

import sys

if sys.argv[1:2] == ["hook"]:
    # MediaMTX waits on hooks (a recording's stop waits for segment-complete); camsvc's
    # path confs run streaming/hook_client.py directly, and this keeps `python -m camsvc
    # hook` fast too: skip the rest of the command line's imports.
    from camsvc.streaming.hook_protocol import main as hook_main

    raise SystemExit(hook_main(sys.argv[2:]))

from camsvc.cli import main

raise SystemExit(main())
