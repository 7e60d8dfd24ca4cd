"""Job queries against real node agents and a real site service (on simulated nodes), as rows
that pandas takes directly."""

from __future__ import annotations

import pathlib
import time

import pandas
import pytest

import powerstack
from conftest import run


def test_a_job_query_is_a_data_frame(agent: str, animated_root: pathlib.Path) -> None:
    # Jobs are marked through the agent's Unix socket (its owner may write), asked over TCP.
    socket = str(animated_root / "agent.sock")
    run("job", "begin", "py-1", "--agent", socket, "--user", "alice")
    time.sleep(0.5)
    run("job", "end", "py-1", "--agent", socket)
    # A second agent that does not answer is a row that says so, not an exception.
    rows = powerstack.job_query("py-1", agents=[agent, "127.0.0.1:1"], timeout_s=2)
    frame = pandas.DataFrame(rows)
    assert list(frame.columns[:5]) == [
        "hostname", "node_power", "result_start_time", "result_end_time", "data_presence"
    ]
    assert {"cpu_power_0", "mem_power_0", "energy_joules", "samples", "status"} <= set(frame)
    assert len(frame) == 3 and frame["hostname"].iloc[-1] == "TOTAL"
    node, away = frame.iloc[0], frame.iloc[1]
    assert node["data_presence"] == "Complete" and node["status"] == "ok"
    assert 20 < node["node_power"] < 1000 and node["energy_joules"] > 0
    assert node["result_end_time"] > node["result_start_time"] > 0
    assert away["data_presence"] == "None" and "unreachable" in away["status"]
    assert away["node_power"] == -1
    doc = powerstack.job_query_document("py-1", agents=[agent])
    assert doc["job_id"] == "py-1" and len(doc["nodes"]) == 1 and "total" in doc
    assert doc["nodes"][0]["energy_joules"] == pytest.approx(node["energy_joules"])


def test_a_bad_job_id_or_address_is_a_value_error() -> None:
    with pytest.raises(powerstack.InvalidArgument, match="job id"):
        powerstack.job_query("a/b", agents=["127.0.0.1:9464"])
    with pytest.raises(ValueError, match="no agent to ask"):
        powerstack.job_query("j1")
    with pytest.raises(powerstack.InvalidArgument, match="timeout_s"):
        powerstack.job_query("j1", agents=["127.0.0.1:9464"], timeout_s=-1)


def test_the_site_lists_and_reports_jobs(site: str) -> None:
    for job in ("py-a", "py-b"):
        run("job", "begin", job, "--site", site, "--nodes", "n[01-02]", "--user", "bob",
            "--no-agents")
    run("job", "end", "py-a", "--site", site, "--no-agents")
    s = powerstack.Site(site)
    jobs = pandas.DataFrame(s.jobs(since="1d"))
    assert sorted(jobs["job_id"]) == ["py-a", "py-b"]
    assert {"user", "nodes", "node_count", "begin_unix_us", "energy_joules", "settled"} <= set(jobs)
    assert set(jobs["user"]) == {"bob"} and set(jobs["node_count"]) == {2}
    running = jobs[jobs["job_id"] == "py-b"].iloc[0]
    assert running["end_utc"] == "running" and pandas.isna(running["end_unix_us"])
    assert [r["job_id"] for r in s.jobs(user="nobody")] == []
    assert s.jobs_document()["schema"] == "powerstack.site-jobs.v1"
    report = pandas.DataFrame(s.job_report("py-a"))
    assert list(report["hostname"]) == ["n01", "n02", "TOTAL"]
    assert "covered_percent" in report.columns
    assert s.job_report_document("py-a")["job"]["id"] == "py-a"


def test_site_errors_are_exceptions(site: str) -> None:
    s = powerstack.Site(site)
    with pytest.raises(powerstack.RemoteError, match="404"):
        s.job_report("no-such-job")
    with pytest.raises(powerstack.InvalidArgument, match="since"):
        s.jobs(since="yesterday")
    with pytest.raises(powerstack.RemoteError, match="unreachable"):
        powerstack.Site("http://127.0.0.1:1", timeout_s=1).jobs()
    with pytest.raises(powerstack.InvalidArgument, match="invalid site address"):
        powerstack.Site("http://127.0.0.1:notaport", timeout_s=1).jobs()


def test_nodes_are_asked_at_their_port() -> None:
    # Nothing listens on port 1: each node is a row saying so, then the total.
    rows = powerstack.job_query("j1", nodes="127.0.0.[1-2]", port=1, timeout_s=1)
    assert [r["hostname"] for r in rows] == ["127.0.0.1", "127.0.0.2", "TOTAL"]
    assert all(r["data_presence"] == "None" for r in rows)
    assert all(r["status"].startswith("unreachable") for r in rows[:2])
