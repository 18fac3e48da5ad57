"""`python3 -m dnsd`: the same as the `dnsd` command."""

import sys

from .cli import main

sys.exit(main())
