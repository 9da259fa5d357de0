# Installs the C SDK of HMS FFI: header, libraries and pkg-config file.
#
#   cargo build --release --manifest-path rust_core/Cargo.toml   # once
#   make install PREFIX=/usr/local [DESTDIR=/staging]
#
# puts under $(DESTDIR)$(PREFIX):
#   include/hms_ffi.h, include/hms_ffi_cdef.h
#   lib/libhms_ffi.so.1.4.0           (soname libhms_ffi.so.1: the ABI major)
#   lib/libhms_ffi.so.1 -> libhms_ffi.so.1.4.0   (what programs load)
#   lib/libhms_ffi.so   -> libhms_ffi.so.1       (what -lhms_ffi links)
#   lib/libhms_ffi.a
#   lib/pkgconfig/hms_ffi.pc          (tools/gen_pkgconfig.py, for PREFIX)
#   share/hms_ffi/proto/hms/**.proto  (the schemas)
# with the version and major of rust_core/Cargo.toml. `make uninstall
# PREFIX=...` removes exactly these. The libraries come from LIBDIR (default:
# the release build); this Makefile never builds the core. After installing
# into a system prefix, run `ldconfig` so the loader finds the library; for
# any other prefix set LD_LIBRARY_PATH=$(PREFIX)/lib (or link with an rpath).
# A C host then builds with pkg-config (examples/c/, README.md "C").
#
#   make soname-link [LIBDIR=...]
# gives a build folder the libhms_ffi.so.1 link that programs linked against
# it look for at run time (cargo writes only libhms_ffi.so), like ldconfig -n.

PREFIX  ?= /usr/local
DESTDIR ?=
LIBDIR  ?= rust_core/target/release
PYTHON  ?= python3
INSTALL ?= install
READELF ?= readelf

VERSION := $(shell sed -n 's/^version *= *"\(.*\)"/\1/p' rust_core/Cargo.toml | head -n1)
MAJOR   := $(firstword $(subst ., ,$(VERSION)))
SONAME  := libhms_ffi.so.$(MAJOR)
REALNAME := libhms_ffi.so.$(VERSION)

dest := $(DESTDIR)$(PREFIX)

.PHONY: install uninstall check-libs soname-link
check-libs:
	@test -n "$(VERSION)" || { echo "make: no version in rust_core/Cargo.toml" >&2; exit 1; }
	@for f in $(LIBDIR)/libhms_ffi.so $(LIBDIR)/libhms_ffi.a; do \
	    test -f $$f || { echo "make install: $$f is missing; build the core first:" >&2; \
	        echo "  cargo build --release --manifest-path rust_core/Cargo.toml" >&2; exit 1; }; \
	done
	@# A library built before the soname existed would be installed under names
	@# that promise one; refuse it instead.
	@$(READELF) -d $(LIBDIR)/libhms_ffi.so | grep -q "Library soname: \[$(SONAME)\]" || { \
	    echo "make install: $(LIBDIR)/libhms_ffi.so has no soname $(SONAME); rebuild it:" >&2; \
	    echo "  cargo build --release --manifest-path rust_core/Cargo.toml" >&2; exit 1; }

install: check-libs
	$(INSTALL) -d $(dest)/include $(dest)/lib/pkgconfig $(dest)/share/hms_ffi
	$(INSTALL) -m 644 include/hms_ffi.h include/hms_ffi_cdef.h $(dest)/include/
	$(INSTALL) -m 755 $(LIBDIR)/libhms_ffi.so $(dest)/lib/$(REALNAME)
	ln -sfn $(REALNAME) $(dest)/lib/$(SONAME)
	ln -sfn $(SONAME) $(dest)/lib/libhms_ffi.so
	$(INSTALL) -m 644 $(LIBDIR)/libhms_ffi.a $(dest)/lib/
	$(PYTHON) tools/gen_pkgconfig.py --prefix $(PREFIX) -o $(dest)/lib/pkgconfig/hms_ffi.pc
	rm -rf $(dest)/share/hms_ffi/proto
	cp -R include/proto $(dest)/share/hms_ffi/proto

uninstall:
	rm -f $(dest)/include/hms_ffi.h $(dest)/include/hms_ffi_cdef.h
	rm -f $(dest)/lib/$(REALNAME) $(dest)/lib/$(SONAME) $(dest)/lib/libhms_ffi.so
	rm -f $(dest)/lib/libhms_ffi.a $(dest)/lib/pkgconfig/hms_ffi.pc
	rm -rf $(dest)/share/hms_ffi

soname-link:
	@test -f $(LIBDIR)/libhms_ffi.so || { echo "make soname-link: $(LIBDIR)/libhms_ffi.so is missing" >&2; exit 1; }
	ln -sfn libhms_ffi.so $(LIBDIR)/$(SONAME)
