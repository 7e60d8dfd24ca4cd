// powerstack dashboard, node page: the last minutes from /v1/samples when it opens, then this
// agent's /v1/power every second, and /v1/caps every ten seconds for each domain's limit.
"use strict";
(() => {
  const WINDOW_MS = 5 * 60 * 1000;
  const POLL_MS = 1000;
  const CAPS_EVERY = 10;
  const history = new Map(); // domain key -> {name, points}
  const nodeHistory = [];
  let limits = new Map(); // domain key -> W
  let polls = 0;
  let last = null;

  const key = (d) => `${d.domain}-${d.index}`;
  const stackable = (d) => d.domain !== "platform" && d.domain !== "node";

  function mode() {
    const checked = document.querySelector("input[name=mode]:checked");
    return checked ? checked.value : "lines";
  }

  async function readCaps() {
    try {
      const caps = await PS.get("/v1/caps");
      const next = new Map();
      for (const c of caps.controls || []) {
        if (c.limit_watts === null || c.enabled === false) continue;
        const k = key(c);
        // The long-term limit is the one a domain's power is held to.
        if (!next.has(k) || c.constraint === "long_term") next.set(k, c.limit_watts);
      }
      limits = next;
    } catch (_) {
      // Capping not configured (503) or not allowed: no limits drawn.
      limits = new Map();
    }
  }

  function header(p) {
    document.getElementById("host").textContent = p.hostname;
    document.title = `powerstack: ${p.hostname}`;
    const sim = document.getElementById("simulated");
    sim.hidden = !p.simulated;
    if (p.simulated) sim.textContent = `SIMULATED ${p.simulated_profile || ""}`.trim();
    const nodePower = document.getElementById("node-power");
    nodePower.textContent = PS.watts(p.node_power_watts);
    nodePower.dataset.watts = p.node_power_watts ?? "";
    document.getElementById("node-source").textContent = p.node_source ? `from ${p.node_source}` : "";
    const energy = p.domains.filter((d) => d.domain === "platform" || d.domain === "node");
    const total = energy.length ? energy[0].energy_joules
      : p.domains.filter(stackable).reduce((a, d) => a + (d.energy_joules || 0), 0);
    document.getElementById("node-energy").textContent = PS.joules(total);
    document.getElementById("interval").textContent =
      `power over the last ${p.interval_s.toFixed(1)} s, read ${PS.clock(p.timestamp_us)}`;
  }

  function table(p) {
    const rows = p.domains.map((d) => {
      const tr = PS.el("tr", { "data-domain": key(d), "data-watts": d.power_watts ?? "",
        "data-timestamp-us": p.timestamp_us });
      tr.append(PS.el("td", {}, key(d)), PS.el("td", {}, d.socket ?? "–"),
        PS.el("td", { class: "num watts" }, PS.watts(d.power_watts)),
        PS.el("td", { class: "num" }, PS.watts(limits.get(key(d)))),
        PS.el("td", { class: "num" }, PS.joules(d.energy_joules)),
        PS.el("td", {}, `${d.provider} ${d.source}`));
      return tr;
    });
    PS.rows(document.querySelector("#domains tbody"), rows);
  }

  function draw() {
    if (!last) return;
    const stacked = mode() === "stacked";
    const series = [];
    let i = 0;
    for (const [k, h] of history) {
      const color = PS.PALETTE[i++ % PS.PALETTE.length];
      const area = stacked && h.stackable;
      series.push({ name: k, color, points: h.points, area });
      const limit = limits.get(k);
      if (limit !== undefined && !area) {
        series.push({ name: `${k} limit`, color, dash: true, hideLegend: true,
          points: h.points.map(([t]) => [t, limit]) });
      }
    }
    if (last.node_power_watts !== null && last.domains.every(stackable)) {
      series.push({ name: "node", color: "#1f2328", points: nodeHistory });
    }
    PS.chart(document.getElementById("chart"), document.getElementById("legend"), series,
      Date.now(), WINDOW_MS);
  }

  function record(t, key, watts, canStack) {
    if (!history.has(key)) history.set(key, { points: [], stackable: canStack });
    const h = history.get(key);
    if (h.points.length && h.points[h.points.length - 1][0] >= t) return;
    h.points.push([t, watts]);
    PS.trim(h.points, WINDOW_MS);
  }

  // The minutes before the page opened, from /v1/samples: power between samples a second or
  // more apart (an unprivileged caller gets one a second, in whole joules).
  async function backfill() {
    try {
      const since = Math.floor((Date.now() - WINDOW_MS) * 1000);
      const doc = await PS.get(`/v1/samples?since=${since}&limit=100000`);
      const doms = doc.domains;
      let prev = null;
      for (const row of doc.samples) {
        if (prev && row[0] - prev[0] < 1e6) continue;
        if (prev) {
          const dt = (row[0] - prev[0]) / 1e6;
          const t = row[0] / 1000;
          let sum = 0;
          doms.forEach((d, i) => {
            if (row[i + 1] === null || prev[i + 1] === null) return;
            const w = ((row[i + 1] - prev[i + 1]) * d.joules_per_tick) / dt;
            record(t, key(d), w, stackable(d));
            if (stackable(d)) sum += w;
          });
          if (doms.every(stackable)) nodeHistory.push([t, sum]);
        }
        prev = row;
      }
    } catch (_) {
      // No history: the chart starts now.
    }
  }

  async function poll() {
    try {
      if (polls++ % CAPS_EVERY === 0) await readCaps();
      const p = await PS.get("/v1/power");
      last = p;
      const t = p.timestamp_us / 1000;
      for (const d of p.domains) {
        if (d.power_watts !== null) record(t, key(d), d.power_watts, stackable(d));
      }
      if (p.node_power_watts !== null && !(nodeHistory.length && nodeHistory[nodeHistory.length - 1][0] >= t)) {
        nodeHistory.push([t, p.node_power_watts]);
        PS.trim(nodeHistory, WINDOW_MS);
      }
      header(p);
      table(p);
      draw();
      document.body.dataset.ready = "true";
      PS.status(`live: /v1/power every ${POLL_MS / 1000} s; limits from /v1/caps`);
    } catch (e) {
      PS.status(e.message, true);
    }
  }

  PS.tokenForm(() => { polls = 0; poll(); });
  for (const r of document.querySelectorAll("input[name=mode]")) r.addEventListener("change", draw);
  window.addEventListener("resize", draw);
  backfill().then(poll);
  setInterval(poll, POLL_MS);
})();
