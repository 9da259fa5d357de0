#!/usr/bin/env bash
# Installs the PHP binding the way bindings/php/README.md says, in a new
# Composer project outside the checkout, and runs the README's quickstart
# against an installed layout:
#
#   make install PREFIX=/tmp/hms-prefix
#   env -i PATH="$PATH" HOME="$HOME" bash tests/install/php.sh /tmp/hms-prefix
#
# Offline: Packagist is switched off. hms/ffi comes from a path repository
# (the checkout's bindings/php, copied into vendor/ as a release would be) and
# google/protobuf from Debian's php-google-protobuf, described to Composer by
# a path repository (README "Offline, with Debian's protobuf runtime").
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
install_check_begin php "$@" -- php composer pkg-config
php -r 'exit(extension_loaded("ffi") ? 0 : 1);' || fail "PHP's FFI extension is not loaded (Debian: php-cli)"
# The CLI's default ffi.enable=preload allows FFI::cdef in the CLI; a php.ini
# that says ffi.enable=0 would refuse it, so say that instead of a load error.
[ "$(php -r 'echo ini_get("ffi.enable");')" != "0" ] || fail "ffi.enable=0 in php.ini: the CLI needs preload (the default) or 1"
protobuf_sources=/usr/share/php/Google/Protobuf
[ -d "$protobuf_sources" ] || fail "$protobuf_sources missing (Debian: php-google-protobuf)"
protobuf_version="$(dpkg-query -W -f='${Version}' php-google-protobuf)"
protobuf_version="${protobuf_version#*:}"   # epoch
protobuf_version="${protobuf_version%%-*}"  # Debian revision

app="$work/app"
mkdir "$app"
cd "$app"

# Composer gets a home of its own (no global config or cache) and must not
# ask anything nor reach a network.
export COMPOSER_HOME="$work/composer-home" COMPOSER_CACHE_DIR="$work/composer-cache"
export COMPOSER_NO_INTERACTION=1 COMPOSER_DISABLE_NETWORK=1 COMPOSER_ALLOW_SUPERUSER=1

say "new Composer project in $app"
composer init --quiet --name install-check/app --type project --stability stable
composer config repositories.packagist false

say "google/protobuf $protobuf_version from Debian's php-google-protobuf"
mkdir debian-protobuf
ln -s /usr/share/php/Google debian-protobuf/Google
ln -s /usr/share/php/GPBMetadata debian-protobuf/GPBMetadata
cat > debian-protobuf/composer.json <<JSON
{"name": "google/protobuf", "version": "$protobuf_version",
 "autoload": {"psr-4": {"Google\\\\Protobuf\\\\": "Google/Protobuf",
                        "GPBMetadata\\\\Google\\\\Protobuf\\\\": "GPBMetadata/Google/Protobuf"}}}
JSON
composer config repositories.debian-protobuf path debian-protobuf

say "composer require hms/ffi:^1.4 from $root/bindings/php"
composer config repositories.hms "{\"type\": \"path\", \"url\": \"$root/bindings/php\", \"options\": {\"symlink\": false}}"
composer require --quiet 'hms/ffi:^1.4' || fail "composer require hms/ffi:^1.4"
[ -d vendor/hms/ffi ] && [ ! -L vendor/hms/ffi ] || fail "vendor/hms/ffi is not a copy of the package"
installed="$(composer show --format=json hms/ffi | php -r 'echo json_decode(stream_get_contents(STDIN), true)["versions"][0];')"
[ "$installed" = "1.4.0" ] || fail "hms/ffi installed as '$installed', not the stable 1.4.0"

say "the README's quickstart (php quickstart.php)"
python3 "$root/tests/install/snippet.py" "$root/bindings/php/README.md" php-quickstart -o quickstart.php
output="$(php quickstart.php 2>&1)" || fail "php quickstart.php:
$output"
echo "$output" | sed 's/^/  | /'
for expected in "libhms_ffi 1.4.0 (ABI 1.4)" "echo: hello from PHP" "protobuf echo: hello from protobuf"; do
  grep -qxF "$expected" <<<"$output" || fail "the quickstart did not print '$expected'"
done

# The copy in vendor/ is outside the checkout, so the library can only have
# come from the prefix: check it was pkg-config's (Native is internal, used
# here only to ask where the search ended).
found="$(php -r 'require "vendor/autoload.php"; $w = Hms\Native::location(); echo $w["via"], " ", $w["library"], " ", $w["cdef"];')"
want="pkg-config $(realpath "$prefix/lib/libhms_ffi.so") $prefix/include/hms_ffi_cdef.h"
[ "$found" = "$want" ] || fail "the library was found as '$found', expected '$want'"
say "ok (found through $found)"
