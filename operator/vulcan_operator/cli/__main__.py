"""`python -m vulcan_operator.cli`: the `vulcan-operator` command."""

import sys

from vulcan_operator.cli import main

sys.exit(main())
