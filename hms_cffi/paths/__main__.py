"""``python -m hms_cffi.paths NAME``: see :mod:`hms_cffi.paths`.

A ``__main__`` of its own because hms_cffi imports hms_cffi.paths when it
loads; running that same module as ``__main__`` would load it twice (and
runpy warns that it does).
"""

import sys

from hms_cffi.paths import main

sys.exit(main())
