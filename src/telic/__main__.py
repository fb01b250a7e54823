"""``python -m telic``: the same as the ``telic`` command."""

from telic.cli import main

main()
