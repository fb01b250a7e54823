"""``python -m telic.sim``: see :mod:`telic.sim.cli`."""

import sys

from telic.sim.cli import main

sys.exit(main())
