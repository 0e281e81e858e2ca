"""``python -m ratpose.cli``: the ``ratpose`` command."""
import sys

from . import main

sys.exit(main())
