"""`python -m camsvc.capture devices|snapshot`: the capture tools without the service CLI."""

import sys

from camsvc.capture._cli import main

sys.exit(main())
