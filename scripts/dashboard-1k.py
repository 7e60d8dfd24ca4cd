#!/usr/bin/env python3
"""The site page with 1,000 nodes, and the page of a 1,000-node job: how soon they paint and
show their data.

Starts `powerstack site serve` (the binary given, a fresh SQLite database) on a free loopback
port, registers 1,000 nodes with 90 s of samples each (one a second, up to a minute ahead) through
the ingest API, records a job on all of them for a few seconds, then opens the site page and the
job's page three times each in headless Chromium driven by chromedriver's W3C WebDriver API, and
prints the browser's first-paint time and when the data was shown (the site page's node table
filled; the job page's totals, node table and both charts drawn), from navigation start. A
measurement, not a test: it asserts nothing about time.

Usage: scripts/dashboard-1k.py [target/debug/powerstack]   (needs chromium and chromium-driver)
"""
import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    r = urllib.request.Request(url, data=data, method=method,
                               headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(r, timeout=30) as answer:
        return json.load(answer)


def load(base, nodes):
    # Samples ending a little ahead, so the nodes stay fresh while the page is measured.
    now = int(time.time() * 1e6) + 60_000_000

    def node(i):
        name, stream = f"n{i:04d}", f"{i:016x}"
        http("PUT", f"{base}/v1/nodes/{name}/streams/{stream}", {
            "hostname": name, "simulated": "load", "started_unix_us": now - 10_000_000,
            "domains": [{"domain": "node", "index": 0, "provider": "bmc",
                         "joules_per_tick": 1.0, "read": True}]})
        watts = 200 + i % 300
        http("POST", f"{base}/v1/nodes/{name}/streams/{stream}/batches", {"seq": 1, "samples": [
            [now - (90 - k) * 1_000_000, 1000 + k * watts] for k in range(91)]})

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(node, range(nodes)))


SITE_SCRIPT = ("return [document.querySelectorAll('#nodes tbody tr').length,"
               " performance.getEntriesByType('paint').map(e => e.startTime),"
               " performance.now(), document.getElementById('nodes-note').textContent]")
JOB_SCRIPT = ("return [document.body.dataset.ready === 'true'"
              " ? document.querySelectorAll('#nodes tbody tr').length : 0,"
              " performance.getEntriesByType('paint').map(e => e.startTime),"
              " performance.now(), document.getElementById('energy').textContent]")


def measure(pages, work):
    port = free_port()
    # The browser's own temporary directories go under `work`, removed at the end.
    driver = subprocess.Popen(["chromedriver", f"--port={port}"],
                              env={**os.environ, "TMPDIR": work},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wd = f"http://127.0.0.1:{port}"
    try:
        for _ in range(50):
            try:
                http("GET", f"{wd}/status")
                break
            except OSError:
                time.sleep(0.1)
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={work}/profile", "--window-size=1100,1400",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
        session = http("POST", f"{wd}/session", {"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": {"args": args}}}})["value"]["sessionId"]
        for what, url, script in pages:
            print(what)
            for run in range(3):
                http("POST", f"{wd}/session/{session}/url", {"url": f"{url}&run={run}"})
                deadline = time.time() + 20
                while True:
                    rows, paints, now_ms, note = http(
                        "POST", f"{wd}/session/{session}/execute/sync",
                        {"script": script, "args": []})["value"]
                    if rows or time.time() > deadline:
                        break
                    time.sleep(0.02)
                first = f"{min(paints):.0f} ms" if paints else "none"
                print(f"  run {run + 1}: first paint {first}; data ({rows} node rows: {note}) "
                      f"shown by {now_ms:.0f} ms")
        http("DELETE", f"{wd}/session/{session}")
    finally:
        driver.kill()
        driver.wait()


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/debug/powerstack"
    with tempfile.TemporaryDirectory() as work:
        port = free_port()
        site = subprocess.Popen([binary, "site", "serve", "--listen", f"127.0.0.1:{port}",
                                 "--database", f"sqlite:{work}/site.db", "--state-dir",
                                 f"{work}/state"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    http("GET", f"{base}/v1/health")
                    break
                except OSError:
                    time.sleep(0.1)
            start = time.time()
            load(base, 1000)
            power = http("GET", f"{base}/v1/site/power")
            print(f"1000 nodes registered in {time.time() - start:.1f} s; "
                  f"site power {power['power_watts']:.0f} W from {power['nodes_fresh']} fresh nodes")
            names = [f"n{i:04d}" for i in range(1000)]
            http("POST", f"{base}/v1/jobs", {"id": "big", "nodes": names, "user": "load"})
            time.sleep(3)
            http("POST", f"{base}/v1/jobs/big/end")
            job = http("GET", f"{base}/v1/jobs/big")
            print(f"job big: {len(job['nodes'])} nodes, {job['total']['energy_joules']:.0f} J, "
                  f"{job['total']['data_presence']}, settled {job['job']['settled']}")
            measure([("the site page", base + "/?", SITE_SCRIPT),
                     ("the page of the 1,000-node job", base + "/job?id=big", JOB_SCRIPT)], work)
        finally:
            site.kill()
            site.wait()


if __name__ == "__main__":
    main()
