"""``python -m diffprior.cli ...`` (and ``torchrun -m diffprior.cli ...``)."""

import sys

from diffprior.cli.main import main

sys.exit(main())
