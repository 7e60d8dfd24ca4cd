#!/usr/bin/env bash
# The Python package (bindings/python) built and tested as a user installs it: a virtual
# environment with maturin, pytest and pandas (pinned, from PyPI, installed once and kept outside
# the checkout by scripts/venv.sh; $PY_VENV picks another), `pip wheel` of the package into target/wheels (maturin runs cargo on the
# workspace's dev profile, so it reuses what `cargo build`/`cargo test` left in target/debug), the
# wheel installed, and pytest over bindings/python/tests, every test on simulated nodes (agents
# and a site service started from target/debug/powerstack). Prints how long each step took.
#
# Environment: PY_VENV, POWERSTACK_BIN (default target/debug/powerstack, built when absent),
# POWERSTACK_MOCK_NVML (default target/debug/libpowerstack_mock_nvml.so, built when absent).
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/venv.sh
wheels=target/wheels
export POWERSTACK_BIN=${POWERSTACK_BIN:-$PWD/target/debug/powerstack}
# Nothing of the caller's environment decides where the tests' nodes are.
unset POWERSTACK_ROOT POWERSTACK_SIMULATE POWERSTACK_SOURCE POWERSTACK_STATE_DIR POWERSTACK_NVML_LIB

now() { echo "$EPOCHREALTIME"; }
took() { awk -v what="$1" -v t0="$2" -v t1="$EPOCHREALTIME" 'BEGIN { printf "%s: %.1f s\n", what, t1 - t0 }'; }
start=$(now)

t=$(now)
requirements=("maturin==1.16.0" "pytest==9.2.0" "pandas==2.3.3")
venv=$(ps_venv python-test ${PY_VENV:+--at "$PY_VENV"} "${requirements[@]}")
# maturin's PEP 517 hooks run the `maturin` of PATH.
export PATH="$venv/bin:$PATH"
took "python-test: virtual environment ($venv)" "$t"

if [ ! -x "$POWERSTACK_BIN" ]; then
  t=$(now)
  cargo build -q -p powerstack
  took "python-test: cargo build -p powerstack" "$t"
fi
# The simulated GPUs' NVML (cargo test --workspace builds it too).
export POWERSTACK_MOCK_NVML=${POWERSTACK_MOCK_NVML:-$PWD/target/debug/libpowerstack_mock_nvml.so}
if [ ! -f "$POWERSTACK_MOCK_NVML" ]; then
  cargo build -q -p powerstack-mock-nvml
fi

t=$(now)
rm -f "$wheels"/powerstack-*.whl
# No build isolation: the maturin of the virtual environment builds, nothing is fetched again.
"$venv/bin/pip" wheel -q --disable-pip-version-check --no-build-isolation --no-deps \
  -w "$wheels" ./bindings/python
took "python-test: pip wheel ./bindings/python" "$t"

t=$(now)
"$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$wheels"/powerstack-*.whl
took "python-test: pip install the wheel" "$t"

t=$(now)
# From another directory, so that the installed package is tested, not the source tree.
(cd bindings/python/tests && "$venv/bin/python" -m pytest -q -p no:cacheprovider .)
took "python-test: pytest" "$t"
took "python-test: total" "$start"
