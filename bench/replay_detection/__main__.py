"""``python -m bench.replay_detection``: run the real-path detection benchmark."""

import sys

from bench.replay_detection.run import main

sys.exit(main())
