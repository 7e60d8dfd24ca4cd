#!/usr/bin/env bash
# The dashboard in a real browser: Debian's headless chromium (and chromium-driver, for whoever
# drives it by WebDriver) installed when absent, then crates/powerstack/tests/dashboard.rs: the
# node page of an agent on a simulated intel-2s node against /v1/power, the site page of
# `powerstack up` showing the bound set on it, no request beyond loopback, and screenshots in
# target/dashboard/{node,site}.png; then scripts/dashboard-1k.py measures the site page with
# 1,000 nodes. Usage: scripts/browser-test.sh (from anywhere). `--install-only`: only install the
# browser; `--after-cargo-test`: `cargo test --workspace` has just run the browser tests (with
# POWERSTACK_BROWSER_TEST_REQUIRED=1, as .ci/run does): only check their screenshots and measure.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing chromium and chromium-driver (Debian packages)"
  apt_start=$(date +%s)
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null \
      && apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null; }
  echo "installed in $(($(date +%s) - apt_start)) s"
fi
chromium --version
[ "${1:-}" = "--install-only" ] && exit 0

start=$(date +%s)
if [ "${1:-}" != "--after-cargo-test" ]; then
  # Here the test may not skip: a missing browser is a failure.
  POWERSTACK_BROWSER_TEST_REQUIRED=1 cargo test -q -p powerstack --locked --test dashboard
fi
for page in node site; do
  test -s "target/dashboard/$page.png" || { echo "FAILED: no target/dashboard/$page.png"; exit 1; }
done
echo "browser tests: ok in $(($(date +%s) - start)) s (screenshots in target/dashboard/)"

echo "== the site page with 1,000 nodes (scripts/dashboard-1k.py: a measurement, asserts no time)"
python3 scripts/dashboard-1k.py "${CARGO_TARGET_DIR:-target}/debug/powerstack"
