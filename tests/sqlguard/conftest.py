from __future__ import annotations

import sys
from pathlib import Path

# The corpus modules sit next to the tests; make them importable whatever pytest's import mode.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
