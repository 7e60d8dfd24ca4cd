// powerstack dashboard, site page: the last ten minutes of site power from
// /v1/site/power/history (a point a minute, from the site's rollups) when it opens, then
// /v1/site/power and /v1/site/bound every two seconds, /v1/nodes, /v1/jobs and
// /v1/site/bound/decisions every six.
"use strict";
(() => {
  const WINDOW_MS = 10 * 60 * 1000;
  const POLL_MS = 2000;
  const LISTS_EVERY = 3;
  const NODE_ROWS = 100;
  const power = [], bound = [], usable = [];
  let polls = 0;
  let lastDecision = null;

  function showBound(b) {
    const el = document.getElementById("bound");
    el.textContent = b.watts === null ? "none" : PS.watts(b.watts);
    el.dataset.watts = b.watts ?? "";
    const parts = [`reserve ${PS.watts(b.reserve_watts)}`, `policy ${b.policy}`, `from ${b.source}`];
    if (b.set_by) parts.push(`set by ${b.set_by}`);
    document.getElementById("bound-detail").textContent = parts.join(", ");
    lastDecision = b.last_decision;
  }

  function draw() {
    const series = [{ name: "site power", color: PS.PALETTE[0], points: power }];
    // The bound over the window: as each read saw it, and before the page opened as now (the
    // API keeps no history of site power; the decisions below say when the bound moved).
    const now = Date.now();
    const span = (list) => {
      const known = list.filter(([, v]) => v !== null);
      if (!known.length || known[known.length - 1][1] === null) return [];
      return [[now - WINDOW_MS, known[0][1]], ...known, [now, known[known.length - 1][1]]];
    };
    if (bound.length && bound[bound.length - 1][1] !== null) {
      series.push({ name: "bound", color: "#cf222e", dash: true, points: span(bound) });
      series.push({ name: "bound less reserve", color: "#bc4c00", dash: true, points: span(usable) });
    }
    PS.chart(document.getElementById("chart"), document.getElementById("legend"), series,
      now, WINDOW_MS);
  }

  function nodes(list) {
    // Fresh nodes first, each group by power (a stale node's power is its last).
    const sorted = list.slice().sort((a, b) =>
      (a.stale - b.stale) || ((b.power_watts ?? -1) - (a.power_watts ?? -1)));
    const top = sorted.reduce((m, n) => Math.max(m, n.power_watts ?? 0), 0) || 1;
    const rows = sorted.slice(0, NODE_ROWS).map((n) => {
      const tr = PS.el("tr", { "data-node": n.name, "data-watts": n.power_watts ?? "" });
      if (n.stale) tr.classList.add("stale");
      const meter = PS.el("div", { class: "meter" });
      meter.style.width = `${(100 * (n.power_watts ?? 0)) / top}%`;
      const bar = PS.el("td", { class: "wide" });
      bar.append(meter);
      const state = PS.el("td", {}, n.simulated ? `simulated ${n.simulated}` : "");
      if (n.stale) state.prepend(PS.el("span", { class: "stale-tag" }, "stale "));
      tr.append(PS.el("td", {}, n.name), PS.el("td", { class: "num" }, PS.watts(n.power_watts)), bar, state);
      return tr;
    });
    PS.rows(document.querySelector("#nodes tbody"), rows);
    const stale = list.filter((n) => n.stale).length;
    document.getElementById("nodes-note").textContent = `${PS.count(list.length, "node")}, ${stale} stale` +
      (list.length > NODE_ROWS ? `; the ${NODE_ROWS} drawing the most shown` : "");
  }

  function jobs(list) {
    const bounds = new Map(((lastDecision && lastDecision.jobs) || []).map((j) => [j.job, j.bound_watts]));
    const running = list.filter((j) => j.end_unix_us === null || j.end_unix_us === undefined);
    PS.rows(document.querySelector("#jobs tbody"), running.map((j) => {
      const tr = PS.el("tr", { "data-job": j.id });
      const link = PS.el("a", { href: `/job?id=${encodeURIComponent(j.id)}` }, j.id);
      const id = PS.el("td");
      id.append(link);
      tr.append(id, PS.el("td", {}, j.user ?? "–"),
        PS.el("td", { class: "num" }, String(j.nodes.length)),
        PS.el("td", { class: "num" }, PS.watts(j.mean_power_watts)),
        PS.el("td", { class: "num" }, PS.watts(j.power_watts)),
        PS.el("td", { class: "num" }, PS.watts(bounds.get(j.id))));
      return tr;
    }));
    document.getElementById("jobs-note").textContent = running.length ? "" : "no job running";
  }

  function decisions(list) {
    PS.rows(document.querySelector("#decisions tbody"), list.slice(0, 10).map((d) => {
      const tr = PS.el("tr");
      tr.append(PS.el("td", {}, PS.clock(d.unix_us)), PS.el("td", { class: "num" }, PS.watts(d.bound_watts)),
        PS.el("td", {}, d.policy), PS.el("td", { class: "why" }, d.why),
        PS.el("td", { class: "num" }, `${d.lowered} / ${d.raised} / ${d.failed}`));
      return tr;
    }));
    document.getElementById("decisions-note").textContent = list.length ? "" : "no decision yet";
  }

  // One list read; a refusal (a user's token does not show decisions) is said in its note.
  async function list(path, noteId, show) {
    try {
      show(await PS.get(path));
    } catch (e) {
      document.getElementById(noteId).textContent = e.message;
    }
  }

  async function poll() {
    const lists = polls++ % LISTS_EVERY === 0;
    try {
      const [p, b] = await Promise.all([PS.get("/v1/site/power"),
        PS.get("/v1/site/bound").catch((e) => ({ error: e.message }))]);
      const t = p.unix_us / 1000;
      power.push([t, p.power_watts]);
      const w = b.error ? null : b.watts;
      bound.push([t, w]);
      usable.push([t, w === null ? null : w - b.reserve_watts]);
      for (const s of [power, bound, usable]) PS.trim(s, WINDOW_MS);
      const sp = document.getElementById("site-power");
      sp.textContent = PS.watts(p.power_watts);
      sp.dataset.watts = p.power_watts;
      document.getElementById("site-nodes").textContent =
        `${PS.count(p.nodes_fresh, "node")} reporting, ${p.nodes_stale} stale (silent over ${p.stale_after_s} s)`;
      if (b.error) document.getElementById("bound-detail").textContent = b.error;
      else showBound(b);
      draw();
      if (lists) {
        await Promise.all([
          list("/v1/nodes", "nodes-note", (d) => nodes(d.nodes)),
          list("/v1/jobs", "jobs-note", (d) => jobs(d.jobs)),
          list("/v1/site/bound/decisions?limit=10", "decisions-note", (d) => decisions(d.decisions)),
        ]);
      }
      document.body.dataset.ready = "true";
      PS.status(`live: site power and bound every ${POLL_MS / 1000} s, lists every ${(POLL_MS * LISTS_EVERY) / 1000} s`);
    } catch (e) {
      PS.status(e.message, true);
    }
  }

  // The minutes before the page opened, as the site's rollups have them (the last two or three
  // are not rolled up yet: the live reads fill them from now on).
  async function history() {
    try {
      const h = await PS.get(`/v1/site/power/history?minutes=${WINDOW_MS / 60000}`);
      const first = power.length ? power[0][0] : Infinity;
      const older = h.points.map((p) => [p.unix_us / 1000, p.power_watts]).filter(([t]) => t < first);
      power.unshift(...older);
      draw();
    } catch (_) {
      // Without the history the chart starts when the page opened, as before.
    }
  }

  PS.tokenForm(() => { polls = 0; poll(); history(); });
  window.addEventListener("resize", draw);
  poll().then(history);
  setInterval(poll, POLL_MS);
})();
