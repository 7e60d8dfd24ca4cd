"""Fixtures: simulated nodes, node agents and a site service, started from the ``powerstack``
binary ($POWERSTACK_BIN, default target/debug/powerstack) and stopped after each test."""

from __future__ import annotations

import os
import pathlib
import subprocess
import threading
from typing import Iterator, List

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
BIN = os.environ.get("POWERSTACK_BIN", str(REPO / "target" / "debug" / "powerstack"))


def run(*args: str) -> str:
    """Runs ``powerstack ARGS``; its stdout. Fails the test on a non-zero exit."""
    r = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"powerstack {' '.join(args)}: {r.stderr}"
    return r.stdout


class Proc:
    """A ``powerstack`` process started in the background, read until a line of stderr holds
    ``marker``; stopped (SIGTERM, then killed) by :meth:`stop`."""

    def __init__(self, args: List[str], marker: str = "") -> None:
        self.p = subprocess.Popen(
            [BIN, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.lines: List[str] = []
        if marker:
            timer = threading.Timer(30, self.p.kill)
            timer.start()
            try:
                assert self.p.stderr is not None
                for line in self.p.stderr:
                    self.lines.append(line)
                    if marker in line:
                        break
                else:
                    raise AssertionError(f"no {marker!r} from powerstack {args}: {self.lines}")
            finally:
                timer.cancel()
        # Keep reading, so that the process never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        if self.p.stderr is not None:
            for _ in self.p.stderr:
                pass

    def stop(self) -> None:
        self.p.terminate()
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


@pytest.fixture
def sim_root(tmp_path: pathlib.Path) -> pathlib.Path:
    """A simulated ``intel-2s`` root made by ``powerstack sim create`` (not animated: its
    limits are files that only the tests and powerstack write)."""
    root = tmp_path / "node"
    run("sim", "create", "--profile", "intel-2s", str(root))
    return root


@pytest.fixture
def animated_root(sim_root: pathlib.Path) -> Iterator[pathlib.Path]:
    """:func:`sim_root`, animated by ``powerstack sim run`` while the test runs."""
    sim = Proc(["sim", "run", "--tick", "5ms", str(sim_root)], marker="animating")
    yield sim_root
    sim.stop()


@pytest.fixture
def agent(animated_root: pathlib.Path) -> Iterator[str]:
    """A node agent on :func:`animated_root`; its address ``127.0.0.1:PORT``."""
    p = Proc(
        [
            "agent", "--root", str(animated_root), "--rate-hz", "50",
            "--socket", str(animated_root / "agent.sock"), "--listen", "127.0.0.1:0",
            "--state-dir", str(animated_root / "state"),
        ],
        marker="API http://",
    )
    addr = p.lines[-1].split("API http://")[1].split("/")[0]
    yield addr
    p.stop()


@pytest.fixture
def site(tmp_path: pathlib.Path) -> Iterator[str]:
    """A site service (SQLite under the test's directory); its URL."""
    state = tmp_path / "site"
    state.mkdir()
    p = Proc(
        ["site", "serve", "--listen", "127.0.0.1:0", "--state-dir", str(state)],
        marker="powerstack site on http://",
    )
    hostport = p.lines[-1].split("http://")[1].split(":")[:2]
    yield "http://" + ":".join(hostport).split()[0].rstrip("/")
    p.stop()


@pytest.fixture(autouse=True)
def no_node_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test depends on the caller's POWERSTACK_* settings."""
    for name in ("POWERSTACK_ROOT", "POWERSTACK_SIMULATE", "POWERSTACK_SOURCE",
                 "POWERSTACK_STATE_DIR", "POWERSTACK_NVML_LIB"):
        monkeypatch.delenv(name, raising=False)
