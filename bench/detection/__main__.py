"""``python -m bench.detection``: run the detection benchmark."""

import sys

from bench.detection.run import main

sys.exit(main())
