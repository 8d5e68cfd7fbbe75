"""`python -m osiris_remote.worker`: what the bootstrap starts from the verified bundle."""

import sys

from osiris_remote.worker.main import main

sys.exit(main())
