"""``python -m telic.otel CONFIG``: the OTel exporter process (see :mod:`telic.otel.worker`)."""

import sys

from telic.otel.worker import main

sys.exit(main(sys.argv[1:]))
