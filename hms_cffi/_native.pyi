"""Type stub of the CFFI extension built by hms_cffi/_build.py.

``ffi`` is the CFFI object of include/hms_ffi_cdef.h; ``lib`` exposes its
functions and constants (typed Any: the declarations are generated, never
copied here).
"""

from typing import Any

ffi: Any
lib: Any
