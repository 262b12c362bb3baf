"""`python -m calico_dcos.installer <command> …` (the zipapp has its own `__main__`)."""

import sys

from .cli import main

sys.exit(main())
