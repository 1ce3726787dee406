#!/bin/sh
# Usage: run.sh PREFIX
# Builds tests/client/consumer against a pg_ingest installed under PREFIX (CMake package, shared
# and static libraries), runs it, then checks the pkg-config file by compiling the same program
# with `pkg-config --cflags --libs pg_ingest`. Exits non-zero on any failure.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 PREFIX" >&2
    exit 2
fi
prefix=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/pg_ingest_consumer.XXXXXX")
trap 'rm -rf "$work"' EXIT

password='Zq9-consumer-secret'
url="jdbc:postgresql://db1:5432,db2:5433/warehouse?user=loader&password=$password&ApplicationName=consumer"

fail() {
    echo "run.sh: FAIL: $*" >&2
    exit 1
}

check_output() {  # $1 = program output
    case "$1" in
        *"$password"*) fail "password visible in output: $1" ;;
    esac
    case "$1" in
        *"host=db1,db2 port=5432,5433 dbname=warehouse user=loader password=*** application_name=consumer"*) ;;
        *) fail "unexpected redacted form: $1" ;;
    esac
}

echo "== exported symbols"
# Only the documented API: no implementation class (an Impl nested in an exported class is
# exported with it unless hidden) and nothing of the detail namespace.
library="$prefix/lib/libpg_ingest.so"
[ -f "$library" ] || fail "no $library"
symbols=$(nm -DC --defined-only "$library") || fail "nm could not read $library"
echo "$symbols" | grep -q 'pg_ingest::Writer::write' || fail "nm listed no pg_ingest symbols"
leaked=$(echo "$symbols" | grep -E 'pg_ingest::([A-Za-z_]+::)*(Impl::|detail::)' || true)
[ -z "$leaked" ] || fail "internal symbols exported: $leaked"
echo "no internal symbols exported"

cmake -S "$here" -B "$work/build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/build" >/dev/null
for program in consumer consumer_static; do
    out=$("$work/build/$program" "$url" "$password") || fail "$program exited with $?"
    check_output "$out"
    echo "$program: $out"
done
if ldd "$work/build/consumer_static" | grep -q libpg_ingest; then
    fail "consumer_static is linked against the shared library"
fi

echo "== pkg-config"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
flags=$(pkg-config --cflags --libs pg_ingest) || fail "pkg-config --cflags --libs pg_ingest"
echo "pkg-config: $flags"
case "$flags" in
    *"-I$prefix/include"*"-L$prefix/lib"*"-lpg_ingest"*) ;;
    *) fail "pkg-config flags do not point into $prefix: $flags" ;;
esac
# shellcheck disable=SC2086  # word splitting of the flags is intended
${CXX:-c++} -std=c++17 "$here/main.cpp" -o "$work/consumer_pc" $flags
out=$(LD_LIBRARY_PATH="$prefix/lib" "$work/consumer_pc" "$url" "$password") ||
    fail "pkg-config build exited with $?"
check_output "$out"
echo "consumer (pkg-config): $out"

static_libs=$(pkg-config --static --libs pg_ingest)
case "$static_libs" in
    *-lpq*) ;;
    *) fail "pkg-config --static --libs lacks libpq: $static_libs" ;;
esac

echo "run.sh: OK"
