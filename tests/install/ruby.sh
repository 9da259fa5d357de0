#!/usr/bin/env bash
# Proves the Ruby binding works installed, from outside the repository:
#
#   make install PREFIX=/tmp/hms && bash tests/install/ruby.sh /tmp/hms
#
# In a fresh folder (removed on exit), it builds the gem and installs it the
# way bindings/ruby/README.md says (`gem build`, `gem install --local`),
# runs the README's quickstart (extracted by snippet.py, so README and test
# cannot drift) against the library installed under PREFIX, and checks that
# without that library `require "hms"` then the first use raises
# HMS::LoadError, a StandardError, saying where it looked.
#
# The gem goes to a private GEM_HOME; GEM_PATH keeps the system's gems after
# it, so `gem install --local` resolves google-protobuf and cbor from them
# (Debian: ruby-google-protobuf, ruby-cbor): rubygems.org is never asked.
# Not `--install-dir`: with it RubyGems ignores the gems installed elsewhere
# and would look for the dependencies in that folder only.
# Works under `env -i PATH="$PATH" HOME="$HOME"`, as root, without a terminal.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
install_check_begin ruby "$@" -- ruby gem pkg-config
gem_src="$root/bindings/ruby"
mkdir -p "$work/gems" "$work/app" "$work/no-pkgconfig"

version="$(ruby -e 'print Gem::Specification.load(ARGV[0]).version' "$gem_src/hms.gemspec")"
gem_file="$work/hms-$version.gem"
say "gem build hms.gemspec (hms $version)"
(cd "$gem_src" && gem build hms.gemspec -o "$gem_file") >"$work/build.log" 2>&1 || {
    cat "$work/build.log" >&2
    fail "gem build"
}
if grep -i "warning" "$work/build.log" >&2; then
    fail "gem build printed warnings"
fi

gem_path="$work/gems:$(gem env gempath)"
say "gem install --local $(basename "$gem_file") into $work/gems (dependencies from the installed gems)"
(cd "$work" && GEM_HOME="$work/gems" GEM_PATH="$gem_path" \
    gem install --local --no-document "$gem_file") >"$work/install.log" 2>&1 || {
    cat "$work/install.log" >&2
    fail "gem install --local (are ruby-google-protobuf and ruby-cbor installed? \`gem list\`)"
}

# Runs ruby in the application folder with nothing from the repository:
# the private gem folder, and whatever "$@" adds before the command.
run_app() {
    (cd "$work/app" && env -i PATH="$PATH" HOME="$HOME" GEM_HOME="$work/gems" GEM_PATH="$gem_path" "$@")
}

loaded_from="$(run_app ruby -e 'require "hms"; print Gem.loaded_specs.fetch("hms").full_gem_path')" ||
    fail "require \"hms\" with the installed gem"
[[ "$loaded_from" == "$work/gems/"* ]] || fail "require \"hms\" loaded $loaded_from, not the installed gem"

say "README quickstart, library from PREFIX through pkg-config"
python3 "$root/tests/install/snippet.py" "$gem_src/README.md" ruby-quickstart -o "$work/app/quickstart.rb"
# What a user of a non-standard PREFIX sets: pkg-config's search path (the
# gem asks pkg-config for libdir) and the loader's (for other programs).
out="$(run_app PKG_CONFIG_PATH="$prefix/lib/pkgconfig" LD_LIBRARY_PATH="$prefix/lib" \
    ruby quickstart.rb 2>&1)" || {
    echo "$out" >&2
    fail "the quickstart exited non-zero"
}
expected="hello
hello, protobuf
HMS::NotFoundError: NOT_FOUND
libhms_ffi $version from $prefix/lib/libhms_ffi.so"
if [[ "$out" != "$expected" ]]; then
    printf 'expected:\n%s\ngot:\n%s\n' "$expected" "$out" >&2
    fail "the quickstart printed something else"
fi

say "no library: HMS::LoadError, rescued as a StandardError"
# pkg-config sees one empty folder (PKG_CONFIG_LIBDIR too, so a hms_ffi.pc
# installed on this machine cannot answer); no LD_LIBRARY_PATH.
out="$(run_app PKG_CONFIG_PATH="$work/no-pkgconfig" PKG_CONFIG_LIBDIR="$work/no-pkgconfig" ruby -e '
require "hms"
begin
  HMS::Runtime.open { |rt| rt.health }
  puts "loaded #{HMS.library_path}"
rescue => e
  puts "#{e.class}: #{e.message}"
end' 2>&1)" || {
    echo "$out" >&2
    fail "the miss was not rescued"
}
echo "$out" | sed 's/^/    /'
if [[ "$out" == "loaded libhms_ffi"* ]]; then
    say "skipped the miss: libhms_ffi is on this machine's loader path ($out)"
elif [[ "$out" != "HMS::LoadError: libhms_ffi was not found."* || "$out" != *"make install PREFIX="* ]]; then
    fail "expected HMS::LoadError listing the places looked at and the fix"
fi
say "ok"
