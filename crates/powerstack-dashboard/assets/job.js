// powerstack dashboard, one job of the site (/job?id=ID): /v1/jobs/{id} (its record, totals and
// nodes) and /v1/jobs/{id}/timeseries (its power over time per node and per domain kind), again
// every five seconds while it runs or its figures settle; downloads of both as CSV and JSON.
"use strict";
(() => {
  const POLL_MS = 5000;
  const NODE_LINES = 12;
  const id = new URLSearchParams(location.search).get("id");
  const path = `/v1/jobs/${encodeURIComponent(id || "")}`;
  let timer = null;

  // A figure of the report: -1 means not measured.
  const known = (x) => (typeof x === "number" && isFinite(x) && x >= 0 ? x : null);

  // The sum of a node's (or the total's) domain figures of one kind (`cpu`, `mem`, `gpu`); null
  // when it has none measured.
  function kind(doc, prefix) {
    let sum = null;
    for (const [k, v] of Object.entries(doc)) {
      if (k.startsWith(prefix + "_power_") && known(v) !== null) sum = (sum ?? 0) + v;
    }
    return sum;
  }

  // The steps the series is asked in: at most about 100,000 figures per kind, 60 to 600 steps,
  // at least a second each.
  function stepFor(spanMs, nodes) {
    const steps = Math.min(600, Math.max(60, Math.floor(100000 / Math.max(1, nodes))));
    const s = Math.max(1, Math.ceil(spanMs / 1000 / steps));
    return s <= 9999 ? `${s}s` : `${Math.ceil(s / 60)}m`;
  }

  function cells(tr, doc, name) {
    const w = (x) => PS.el("td", { class: "num" }, PS.watts(known(x)));
    tr.append(PS.el("td", {}, name),
      PS.el("td", { class: "num", "data-joules": known(doc.energy_joules) ?? "" }, PS.joules(known(doc.energy_joules))),
      w(doc.node_power), w(doc.peak_node_power), w(kind(doc, "cpu")), w(kind(doc, "mem")), w(kind(doc, "gpu")),
      PS.el("td", { class: "num" }, String(doc.samples ?? "–")));
  }

  function showReport(r) {
    const j = r.job, total = r.total;
    document.getElementById("job-id").textContent = j.id;
    document.title = `powerstack: job ${j.id}`;
    const who = [j.user && `user ${j.user}`, j.account && `account ${j.account}`, j.app && `app ${j.app}`].filter(Boolean);
    const end = j.end_unix_us ?? null;
    document.getElementById("job-detail").textContent = [...who, PS.count(j.nodes.length, "node"),
      `began ${PS.clock(j.begin_unix_us)}`, end === null ? "running" : `ended ${PS.clock(end)}`].join(" · ");
    const energy = document.getElementById("energy");
    energy.textContent = PS.joules(known(total.energy_joules));
    energy.dataset.joules = known(total.energy_joules) ?? "";
    document.getElementById("energy-detail").textContent = known(total.energy_joules) === null ? "" :
      `${(total.energy_joules / 3.6e6).toFixed(4)} kWh over ${PS.count(total.nodes_answered, "node")}`;
    const mean = document.getElementById("mean");
    mean.textContent = PS.watts(known(total.node_power));
    mean.dataset.watts = known(total.node_power) ?? "";
    document.getElementById("duration").textContent =
      `over ${PS.duration(((end ?? Date.now() * 1000) - j.begin_unix_us) / 1000)}${end === null ? " so far" : ""}`;
    document.getElementById("peak").textContent = PS.watts(j.peak_power_watts);
    document.getElementById("presence").textContent = total.data_presence;
    document.getElementById("presence-detail").textContent = j.settled ? "final" :
      end === null ? "running: figures so far" : "settling: samples may still arrive";
    PS.rows(document.querySelector("#nodes tbody"), r.nodes.map((n) => {
      const tr = PS.el("tr", { "data-node": n.hostname });
      cells(tr, n, n.hostname);
      tr.append(PS.el("td", {}, `${n.data_presence}${n.status === "ok" ? "" : ` (${n.status})`}`));
      return tr;
    }));
    const foot = PS.el("tr", { class: "total" });
    // The total's peak: the sum of the nodes' peaks, as in the record.
    cells(foot, { ...total, peak_node_power: j.peak_power_watts }, "TOTAL");
    foot.append(PS.el("td", {}, total.data_presence));
    document.querySelector("#nodes tfoot").replaceChildren(foot);
    const shared = (r.shared || []).length, bmc = (r.bmc || []).length;
    document.getElementById("nodes-note").textContent = [
      shared && `${PS.count(shared, "node")} shared with other jobs (energy split between them)`,
      bmc && `${PS.count(bmc, "node")} measured through ${bmc === 1 ? "its" : "their"} BMC`,
    ].filter(Boolean).join("; ");
    return end === null || !j.settled;
  }

  function showSeries(t, begin, spanMs) {
    const stepMs = t.step_s * 1000;
    const at = (k) => t.start_unix_us / 1000 + (k + 0.5) * stepMs;
    const points = (v) => v.map((w, k) => [at(k), w]).filter(([, w]) => w !== null);
    const sum = (get) => {
      const steps = t.nodes.reduce((m, n) => Math.max(m, n.watts.length), 0);
      const out = [];
      for (let k = 0; k < steps; k++) {
        let s = null;
        for (const n of t.nodes) {
          const w = (get(n) || [])[k];
          if (w !== null && w !== undefined) s = (s ?? 0) + w;
        }
        if (s !== null) out.push([at(k), s]);
      }
      return out;
    };
    const byNode = t.nodes.length <= NODE_LINES
      ? t.nodes.map((n, i) => ({ name: n.node, color: PS.PALETTE[i % PS.PALETTE.length], points: points(n.watts) }))
      : [{ name: `all ${t.nodes.length} nodes, summed`, color: PS.PALETTE[0], points: sum((n) => n.watts) }];
    const kinds = [["CPU", "cpu_watts", 0], ["memory", "memory_watts", 1], ["GPU", "gpu_watts", 2]]
      .map(([name, key, c]) => ({ name, color: PS.PALETTE[c], area: true, points: sum((n) => n[key]) }))
      .filter((s) => s.points.length);
    kinds.push({ name: "node", color: "#6e7781", points: sum((n) => n.watts) });
    const end = begin + spanMs;
    PS.chart(document.getElementById("chart-nodes"), document.getElementById("legend-nodes"), byNode, end, spanMs, { elapsed: true });
    PS.chart(document.getElementById("chart-kinds"), document.getElementById("legend-kinds"), kinds, end, spanMs, { elapsed: true });
  }

  let last = null;
  async function load() {
    try {
      const r = await PS.get(path);
      const live = showReport(r);
      const begin = r.job.begin_unix_us / 1000;
      const spanMs = Math.max(1000, ((r.job.end_unix_us ?? Date.now() * 1000) / 1000) - begin);
      const t = await PS.get(`${path}/timeseries?step=${stepFor(spanMs, r.job.nodes.length)}`);
      last = [t, begin, spanMs];
      showSeries(t, begin, spanMs);
      document.body.dataset.ready = "true";
      PS.status(live ? `live: every ${POLL_MS / 1000} s until the job's figures are final` : "final figures");
      if (!live && timer !== null) {
        clearInterval(timer);
        timer = null;
      }
    } catch (e) {
      PS.status(e.message, true);
    }
  }

  if (!id) {
    PS.status("no job given: open /job?id=ID, or pick one in the job list", true);
    return;
  }
  document.getElementById("job-id").textContent = id;
  for (const b of document.querySelectorAll("[data-download]")) {
    b.addEventListener("click", () => {
      const what = b.dataset.download, format = b.dataset.format;
      const route = what === "report" ? path : `${path}/timeseries`;
      const name = `job-${id}${what === "report" ? "" : "-timeseries"}.${format}`;
      PS.download(`${route}?format=${format}`, name).catch((e) => PS.status(e.message, true));
    });
  }
  PS.tokenForm(() => { load(); if (timer === null) timer = setInterval(load, POLL_MS); });
  window.addEventListener("resize", () => { if (last) showSeries(...last); });
  load();
  timer = setInterval(load, POLL_MS);
})();
