"""Readings of simulated nodes: power, energy, domains and the native documents, and where the
node is found (arguments, then the environment)."""

from __future__ import annotations

import pathlib
import threading
import time

import pandas
import pytest

import powerstack


def test_power_of_a_simulated_node_is_plausible() -> None:
    with powerstack.Node(simulate="intel-2s") as node:
        assert node.simulated == "intel-2s"
        assert node.simulated_note and node.simulated_note.startswith("SIMULATED:")
        reading = node.power(interval_s=0.2)
    assert isinstance(reading, powerstack.PowerReading)
    assert reading.simulated_profile == "intel-2s"
    assert 0.15 <= reading.interval_s < 5
    # intel-2s: two 150 W packages, two memories, a platform meter; idle to full load.
    assert reading.node_power_watts is not None and 20 < reading.node_power_watts < 1000
    packages = [d for d in reading.domains if d.domain == "package"]
    assert [d.socket for d in packages] == [0, 1]
    for d in reading.domains:
        assert d.power_watts is not None and 0 < d.power_watts < 1000, d
    assert reading.as_dict()["domains"][0]["domain"] == reading.domains[0].domain
    frame = pandas.DataFrame(reading.rows())
    assert len(frame) == len(reading.domains)
    assert {"hostname", "domain", "index", "power_watts", "energy_joules"} <= set(frame.columns)
    assert frame["power_watts"].sum() > 0


def test_energy_only_grows() -> None:
    with powerstack.Node(simulate="intel-2s") as node:
        first = node.energy()
        time.sleep(0.3)
        second = node.energy()
    assert first.node_energy_joules is not None and second.node_energy_joules is not None
    assert second.node_energy_joules > first.node_energy_joules
    assert [(d.domain, d.index) for d in first.domains] == [
        (d.domain, d.index) for d in second.domains
    ]
    for a, b in zip(first.domains, second.domains):
        assert a.energy_joules is not None and b.energy_joules is not None
        assert b.energy_joules >= a.energy_joules, (a, b)
    assert pandas.DataFrame(second.rows())["energy_joules"].notna().all()


def test_domains_carry_their_limits() -> None:
    with powerstack.Node(simulate="intel-2s") as node:
        domains = node.domains()
    kinds = {d.domain for d in domains}
    assert {"platform", "package", "memory"} <= kinds
    package0 = next(d for d in domains if d.domain == "package" and d.index == 0)
    assert package0.provider == "powercap"
    long_term = next(c for c in package0.controls if c.name == "long_term")
    assert long_term.limit_watts == 150.0 and long_term.locked is False


def test_json_documents_have_their_schemas() -> None:
    with powerstack.Node(simulate="intel-2s") as node:
        power = node.power_json(0.1)
        energy = node.energy_json()
        domains = node.domains_json()
        caps = node.caps_json()
    assert power["schema"] == "powerstack.power.v1"
    assert {"hostname", "timestamp_us", "interval_s", "node_power_watts", "domains",
            "warnings"} <= set(power)
    assert energy["schema"] == "powerstack.energy.v1"
    assert {"node_energy_joules", "domains"} <= set(energy)
    assert domains["schema"] == "powerstack.domains.v1"
    assert {"sources", "domains"} <= set(domains)
    assert caps["schema"] == "powerstack.caps.v1"
    assert {"controls", "node"} <= set(caps)
    assert all(d["simulated"] for d in (power, energy, domains))


def test_measuring_releases_the_gil() -> None:
    node = powerstack.Node(simulate="intel-2s")
    other = powerstack.Node(simulate="intel-2s")
    with node, other:
        entered = threading.Event()
        readings = []

        def measure() -> None:
            entered.set()
            readings.append(node.power(interval_s=1.5))

        worker = threading.Thread(target=measure)
        worker.start()
        entered.wait()
        # Were the GIL held for the 1.5 s measurement, this thread could run again only after it.
        time.sleep(0.3)
        assert other.energy().node_energy_joules is not None
        assert worker.is_alive()
        worker.join()
    assert readings and readings[0].interval_s >= 1.5


def test_the_environment_says_where_the_node_is(
    monkeypatch: pytest.MonkeyPatch, sim_root: pathlib.Path
) -> None:
    monkeypatch.setenv("POWERSTACK_SIMULATE", "amd-2s")
    with powerstack.Node() as node:
        assert node.simulated == "amd-2s"
    # An argument comes before the environment.
    with powerstack.Node(simulate="intel-2s") as node:
        assert node.simulated == "intel-2s"
    monkeypatch.delenv("POWERSTACK_SIMULATE")
    monkeypatch.setenv("POWERSTACK_ROOT", str(sim_root))
    with powerstack.Node() as node:
        # A root made by `sim create` is labelled with its profile, and its note names it.
        assert node.simulated == "intel-2s"
        assert node.simulated_note is not None and str(sim_root) in node.simulated_note
        assert {d.domain for d in node.domains()} >= {"package", "memory"}


def test_bad_arguments_raise_value_errors(tmp_path: pathlib.Path) -> None:
    with pytest.raises(powerstack.InvalidArgument, match="--simulate"):
        powerstack.Node(simulate="no-such-profile")
    with pytest.raises(ValueError, match="not a directory"):
        powerstack.Node(root=tmp_path / "absent")
    with pytest.raises(powerstack.Unavailable, match="no readable power source"):
        powerstack.Node(root=tmp_path)
    with powerstack.Node(simulate="intel-2s") as node:
        with pytest.raises(powerstack.InvalidArgument, match="interval_s"):
            node.power(interval_s=0)
    with pytest.raises(powerstack.InvalidArgument, match="closed"):
        node.energy()


def test_the_example_of_the_documentation_runs(capsys: pytest.CaptureFixture[str]) -> None:
    text = (pathlib.Path(__file__).resolve().parents[3] / "docs" / "bindings.md").read_text()
    example = text.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(example, "docs/bindings.md", "exec"), {})
    out = capsys.readouterr().out
    assert "node: " in out and "refused: " in out and "read back: 120.0 W" in out
