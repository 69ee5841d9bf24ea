"""`python -m reconciler.emulator`: the same as `reconcile emulator` (see cli.py)."""

import sys

from reconciler.emulator.cli import main

sys.exit(main())
