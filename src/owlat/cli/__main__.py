"""`python -m owlat.cli` is `owlat`."""

from __future__ import annotations

import sys

from owlat.cli import main

sys.exit(main())
