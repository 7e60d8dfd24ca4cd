"""Caps on simulated nodes: applied, read back and reset; refused ones change nothing."""

from __future__ import annotations

import os
import pathlib

import pytest

import powerstack
from conftest import REPO

ZONE0 = "sys/class/powercap/intel-rapl:0"
MOCK_NVML = os.environ.get(
    "POWERSTACK_MOCK_NVML", str(REPO / "target" / "debug" / "libpowerstack_mock_nvml.so")
)


def long_term_uw(root: pathlib.Path, zone: str = ZONE0) -> int:
    """The long-term limit of a RAPL zone as the file holds it, µW."""
    return int((root / zone / "constraint_0_power_limit_uw").read_text())


def test_a_cap_is_applied_read_back_and_reset(sim_root: pathlib.Path) -> None:
    other = "sys/class/powercap/intel-rapl:1"
    before = long_term_uw(sim_root), long_term_uw(sim_root, other)
    assert before == (150_000_000, 150_000_000)
    with powerstack.Node(root=sim_root) as node:
        result = node.cap_socket(120, socket=0)
        assert result.command == "socket" and not result.dry_run
        [write] = result.writes
        assert (write.domain, write.index, write.constraint) == ("package", 0, "long_term")
        assert write.previous_watts == 150.0 and write.read_back_watts == 120.0
        assert long_term_uw(sim_root) == 120_000_000
        assert long_term_uw(sim_root, other) == 150_000_000
        caps = node.caps()
        mine = next(
            c for c in caps.controls
            if (c.domain, c.index, c.constraint) == ("package", 0, "long_term")
        )
        assert mine.limit_watts == 120.0 and mine.set_by == "powerstack"
        assert mine.original_watts == 150.0
        reset = node.reset()
        assert reset.command == "reset" and reset.writes
    assert (long_term_uw(sim_root), long_term_uw(sim_root, other)) == before


def test_an_out_of_range_cap_raises_and_changes_nothing(sim_root: pathlib.Path) -> None:
    before = long_term_uw(sim_root)
    with powerstack.Node(root=sim_root) as node:
        with pytest.raises(powerstack.CapRefused, match="outside the allowed range") as refused:
            node.cap_socket(10_000, socket=0)
        assert isinstance(refused.value, ValueError)
        with pytest.raises(powerstack.CapRefused):
            node.cap_socket(float("nan"))
        with pytest.raises(powerstack.CapRefused):
            node.cap_memory(-5)
        with pytest.raises(powerstack.Unavailable):
            node.cap_socket(100, socket=9)
        with pytest.raises(powerstack.Unavailable):
            node.cap_gpu(200)
        with pytest.raises(powerstack.InvalidArgument, match="policy"):
            node.cap_node(300, policy="fastest")
    assert long_term_uw(sim_root) == before
    # Refused before anything was locked or journaled.
    assert not (sim_root / "var/lib/powerstack/journal.json").exists()


def test_a_dry_run_writes_nothing(sim_root: pathlib.Path) -> None:
    with powerstack.Node(root=sim_root) as node:
        result = node.cap_socket(100, dry_run=True)
    assert result.dry_run and len(result.writes) == 2
    assert all(w.requested_watts == 100.0 and w.read_back_watts is None for w in result.writes)
    assert long_term_uw(sim_root) == 150_000_000


def test_a_node_cap_is_split_and_reset(animated_root: pathlib.Path) -> None:
    with powerstack.Node(root=animated_root) as node:
        rng = node.caps().node
        assert rng is not None and rng.min_watts < rng.max_watts
        target = (rng.min_watts + rng.max_watts) / 2
        result = node.cap_node(target, policy="uniform", interval_s=0.2)
        assert result.node_cap_watts == target and result.policy == "uniform"
        assert result.writes and all(w.read_back_watts is not None for w in result.writes)
        assert long_term_uw(animated_root) < 150_000_000
        node.reset()
    assert long_term_uw(animated_root) == 150_000_000


def test_a_gpu_cap_goes_through_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    # The simulated GPUs answer through the mock NVML library, loaded as the real one is.
    monkeypatch.setenv("POWERSTACK_MOCK_NVML", MOCK_NVML)
    with powerstack.Node(simulate="nvidia-4gpu") as node:
        gpus = [d for d in node.power(0.2).domains if d.domain == "gpu"]
        assert len(gpus) == 4 and all(d.provider == "nvml" for d in gpus)

        def caps() -> list:
            """Each GPU's cap in force, by index."""
            gpus = [c for c in node.caps().controls if c.domain == "gpu"]
            return [c.limit_watts for c in sorted(gpus, key=lambda c: c.index)]

        before = caps()
        assert len(before) == 4
        with pytest.raises(powerstack.CapRefused):
            node.cap_gpu(1, gpu=0)
        assert caps() == before
        [write] = node.cap_gpu(300, gpu=0).writes
        assert write.read_back_watts == 300.0 and write.provider == "nvml"
        assert caps() == [300.0, *before[1:]]
        node.reset()
        assert caps() == before


def test_a_reset_ends_an_agents_standing_node_cap(sim_root: pathlib.Path) -> None:
    state = sim_root / "var/lib/powerstack"
    with powerstack.Node(root=sim_root) as node:
        node.cap_socket(120, socket=0)
        # What an agent on this state directory keeps standing, as `powerstack cap reset` ends it.
        standing = state / "node-cap.json"
        standing.write_text('{"node_watts": 300.0, "policy": "proportional"}')
        node.reset(dry_run=True)
        assert standing.exists()
        node.reset()
    assert not standing.exists()
    assert long_term_uw(sim_root) == 150_000_000
