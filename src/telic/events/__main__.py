"""``python -m telic.events > docs/events.md`` writes the catalogue's documentation."""

import sys

from telic.events.catalogue import render_markdown

sys.stdout.write(render_markdown())
