#!/usr/bin/env bash
# The bindings' checks that `cargo test` does not make: the C test of libpowerstack under valgrind
# (no memory error, nothing definitely lost), and the Fortran module built with gfortran and its
# test run, both on a simulated intel-2s node. gfortran is installed when absent (Debian package
# gfortran). Usage: scripts/bindings-test.sh (from anywhere; builds powerstack-c first).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

if ! command -v gfortran >/dev/null 2>&1; then
  echo "== installing gfortran (Debian package gfortran)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends gfortran >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends gfortran >/dev/null; }
fi

# POWERSTACK_LIB_DIR: where libpowerstack.so already is (.ci/run: target/debug/deps, which
# `cargo test --workspace` has just built; building powerstack-c alone would build its
# dependencies again with another feature set).
if [ -n "${POWERSTACK_LIB_DIR:-}" ] && [ -f "$POWERSTACK_LIB_DIR/libpowerstack.so" ]; then
  lib=$POWERSTACK_LIB_DIR
else
  cargo build -q -p powerstack-c --locked
  lib="${CARGO_TARGET_DIR:-target}/debug"
fi
lib=$(realpath "$lib")
work=$(mktemp -d "${TMPDIR:-/tmp}/powerstack-bindings.XXXXXX")
trap 'rm -rf "$work"' EXIT
# The node is simulated by the test itself; nothing from the caller's environment chooses another.
unset POWERSTACK_ROOT POWERSTACK_SOURCE POWERSTACK_SIMULATE POWERSTACK_STATE_DIR

echo "== C test of libpowerstack under valgrind"
gcc -Wall -Wextra -Werror -std=c11 -D_POSIX_C_SOURCE=200809L -I crates/powerstack-c/include \
  crates/powerstack-c/tests/c/test_powerstack.c -o "$work/test_c" \
  -L "$lib" -lpowerstack -lpthread -lm -Wl,-rpath,"$lib"
if ! valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=3 \
  "$work/test_c" quick 2>"$work/valgrind.log"; then
  cat "$work/valgrind.log"
  echo "FAILED: the C test under valgrind (memory errors or a definite leak above)"
  exit 1
fi
grep -E "definitely lost|ERROR SUMMARY" "$work/valgrind.log" | sed 's/^==[0-9]*== */valgrind: /'

echo "== Fortran module and its test (gfortran)"
gfortran -std=f2008 -Wall -Werror -J "$work" bindings/fortran/powerstack.f90 \
  bindings/fortran/tests/test_powerstack.f90 -o "$work/test_fortran" \
  -L "$lib" -lpowerstack -Wl,-rpath,"$lib"
"$work/test_fortran"

echo "== the examples of docs/bindings.md, on a simulated node"
# The first ```c and ```fortran blocks of the document, compiled and run as it says.
block() { awk -v lang="$1" '$0 == "```" lang { on = 1; next } on && $0 == "```" { exit } on' docs/bindings.md; }
block c >"$work/power.c"
block fortran >"$work/power.f90"
gcc -Wall -Werror -I crates/powerstack-c/include "$work/power.c" -o "$work/power_c" \
  -L "$lib" -lpowerstack -Wl,-rpath,"$lib"
gfortran -Wall -J "$work" bindings/fortran/powerstack.f90 "$work/power.f90" -o "$work/power_f" \
  -L "$lib" -lpowerstack -Wl,-rpath,"$lib"
for example in power_c power_f; do
  out=$(POWERSTACK_SIMULATE=intel-2s "$work/$example" 2>/dev/null)
  grep -q "^node: " <<<"$out" && grep -q "refused (-3)" <<<"$out" \
    || { echo "FAILED: $example printed:"; echo "$out"; exit 1; }
  echo "$example: ok"
done

echo "== bindings checks passed in $(( $(date +%s) - start )) s"
