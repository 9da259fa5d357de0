# Installs the C SDK of HMS FFI: header, libraries and pkg-config file.
#
#   cargo build --release --manifest-path rust_core/Cargo.toml   # once
#   make install PREFIX=/usr/local [DESTDIR=/staging]
#
# puts under $(DESTDIR)$(PREFIX):
#   include/hms_ffi.h, include/hms_ffi_cdef.h
#   lib/libhms_ffi.so, lib/libhms_ffi.a
#   lib/pkgconfig/hms_ffi.pc          (tools/gen_pkgconfig.py, for PREFIX)
#   share/hms_ffi/proto/hms/**.proto  (the schemas)
# `make uninstall PREFIX=...` removes exactly these. The libraries come from
# LIBDIR (default: the release build); this Makefile never builds the core.
# A C host then builds with pkg-config (examples/c/).

PREFIX  ?= /usr/local
DESTDIR ?=
LIBDIR  ?= rust_core/target/release
PYTHON  ?= python3
INSTALL ?= install

dest := $(DESTDIR)$(PREFIX)

.PHONY: install uninstall check-libs
check-libs:
	@for f in $(LIBDIR)/libhms_ffi.so $(LIBDIR)/libhms_ffi.a; do \
	    test -f $$f || { echo "make install: $$f is missing; build the core first:" >&2; \
	        echo "  cargo build --release --manifest-path rust_core/Cargo.toml" >&2; exit 1; }; \
	done

install: check-libs
	$(INSTALL) -d $(dest)/include $(dest)/lib/pkgconfig $(dest)/share/hms_ffi
	$(INSTALL) -m 644 include/hms_ffi.h include/hms_ffi_cdef.h $(dest)/include/
	$(INSTALL) -m 755 $(LIBDIR)/libhms_ffi.so $(dest)/lib/
	$(INSTALL) -m 644 $(LIBDIR)/libhms_ffi.a $(dest)/lib/
	$(PYTHON) tools/gen_pkgconfig.py --prefix $(PREFIX) -o $(dest)/lib/pkgconfig/hms_ffi.pc
	rm -rf $(dest)/share/hms_ffi/proto
	cp -R include/proto $(dest)/share/hms_ffi/proto

uninstall:
	rm -f $(dest)/include/hms_ffi.h $(dest)/include/hms_ffi_cdef.h
	rm -f $(dest)/lib/libhms_ffi.so $(dest)/lib/libhms_ffi.a $(dest)/lib/pkgconfig/hms_ffi.pc
	rm -rf $(dest)/share/hms_ffi
