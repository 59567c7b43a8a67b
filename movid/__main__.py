"""``python -m movid …`` is the ``movid`` command."""

import sys

from movid.cli import main

sys.exit(main())
