# Sourced by scripts/schemathesis.sh and scripts/schemathesis-site.sh: the powerstack binary
# (POWERSTACK_BIN, default target/debug/powerstack, built when absent), the seed (ST_SEED) and
# schemathesis, pinned, in a virtual environment kept outside the checkout by scripts/venv.sh (or
# $ST_VENV), installed when absent.
ST_VERSION=4.32.5
SEED=${ST_SEED:-20261205}
BIN=${POWERSTACK_BIN:-target/debug/powerstack}

if [ ! -x "$BIN" ]; then
  cargo build -q -p powerstack --locked
fi
. scripts/venv.sh
VENV=$(ps_venv schemathesis ${ST_VENV:+--at "$ST_VENV"} "schemathesis==$ST_VERSION")

# A free TCP port on loopback.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
