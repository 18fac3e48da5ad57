"""`python -m dnsd.cni`: the plugin, as `dnsd-cni` runs it."""

import sys

from .plugin import main

sys.exit(main())
