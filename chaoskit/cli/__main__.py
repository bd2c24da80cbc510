"""`python -m chaoskit.cli`: the same as the `chaoskit` command."""

import sys

from chaoskit.cli import main

sys.exit(main())
