// powerstack dashboard: what both pages share: API reads with the optional token, number
// formats, and the SVG line/area chart. No third-party code; nothing is fetched from elsewhere.
"use strict";
const PS = (() => {
  const SVG_NS = "http://www.w3.org/2000/svg"; // a namespace name, never fetched
  const TOKEN_KEY = "powerstack-token";
  const PALETTE = ["#1f6feb", "#d4a72c", "#2da44e", "#bf3989", "#8250df", "#e16f24", "#0a7d8c",
    "#6e7781", "#cf222e", "#57ab5a"];

  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

  /** Wires the token field: kept for this tab only, sent as a bearer token. */
  function tokenForm(onChange) {
    const form = document.getElementById("token-form");
    const input = document.getElementById("token");
    if (!form || !input) return;
    input.value = token();
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (input.value) sessionStorage.setItem(TOKEN_KEY, input.value);
      else sessionStorage.removeItem(TOKEN_KEY);
      onChange();
    });
  }

  /** GET a documented route of this server as JSON; throws an Error with the API's message. */
  async function get(path) {
    const headers = { Accept: "application/json" };
    const t = token();
    if (t) headers.Authorization = "Bearer " + t;
    const r = await fetch(path, { headers, cache: "no-store" });
    let body = null;
    try { body = await r.json(); } catch (_) { /* not JSON: the status says it */ }
    if (!r.ok) {
      const msg = body && body.error && body.error.message ? body.error.message : r.statusText;
      const err = new Error(`${path}: ${r.status} ${msg}`);
      err.status = r.status;
      throw err;
    }
    return body;
  }

  function watts(w) {
    if (w === null || w === undefined || !isFinite(w)) return "–";
    const a = Math.abs(w);
    if (a >= 1e6) return (w / 1e6).toFixed(2) + " MW";
    if (a >= 1e4) return (w / 1e3).toFixed(1) + " kW";
    return w.toFixed(1) + " W";
  }

  function joules(j) {
    if (j === null || j === undefined || !isFinite(j)) return "–";
    if (j >= 3.6e6) return (j / 3.6e6).toFixed(2) + " kWh";
    if (j >= 1e4) return (j / 1e3).toFixed(1) + " kJ";
    return j.toFixed(0) + " J";
  }

  function clock(unixUs) {
    return new Date(unixUs / 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    return e;
  }

  /** Replaces a table body's rows. */
  function rows(tbody, list) {
    tbody.replaceChildren(...list);
  }

  function status(text, isError) {
    const s = document.getElementById("status");
    if (!s) return;
    s.textContent = text;
    s.classList.toggle("error", !!isError);
  }

  // A tick step of 1, 2 or 5 × 10^k giving about `n` ticks over `span`.
  function step(span, n) {
    const raw = span / n;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const m = raw / p;
    return p * (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10);
  }

  /** A duration in ms as text: `45 s`, `12 min`, `1.5 h`. */
  function duration(ms) {
    const s = ms / 1000;
    const trim = (x) => String(Number(x.toFixed(1)));
    if (s < 120) return `${trim(s)} s`;
    if (s < 7200) return `${trim(s / 60)} min`;
    return `${trim(s / 3600)} h`;
  }

  /**
   * Draws `series` ([{name, color, points: [[unix_ms, watts], ...], dash, area}]) over the last
   * `windowMs` before `nowMs` into the <svg> `node`; `area` series are drawn stacked as areas
   * (in order), the others as lines. Legend into `legendNode`. The time axis counts back from
   * now, or with `opts.elapsed` forward from the window's start (a job's page).
   */
  function chart(node, legendNode, series, nowMs, windowMs, opts) {
    const elapsed = !!(opts && opts.elapsed);
    const width = node.clientWidth || 600, height = node.clientHeight || 240;
    const m = { l: 52, r: 10, t: 8, b: 22 };
    const t0 = nowMs - windowMs;
    // Stack the area series.
    const stacked = [];
    let base = null;
    for (const s of series.filter((x) => x.area)) {
      const below = new Map((base || []).map(([t, v]) => [t, v]));
      const pts = s.points.map(([t, v]) => [t, (below.get(t) || 0) + v, below.get(t) || 0]);
      stacked.push({ s, pts });
      base = pts;
    }
    let top = 0;
    for (const s of series) for (const [, v] of s.points) top = Math.max(top, v);
    for (const { pts } of stacked) for (const [, v] of pts) top = Math.max(top, v);
    top = top > 0 ? top * 1.08 : 1;
    const yStep = step(top, 4);
    top = Math.ceil(top / yStep) * yStep;
    const x = (t) => m.l + ((t - t0) / windowMs) * (width - m.l - m.r);
    const y = (v) => height - m.b - (v / top) * (height - m.t - m.b);
    const kids = [];
    for (let v = 0; v <= top + 1e-9; v += yStep) {
      kids.push(svg("line", { class: "grid", x1: m.l, x2: width - m.r, y1: y(v), y2: y(v) }));
      const label = svg("text", { x: m.l - 4, y: y(v) + 4, "text-anchor": "end" });
      label.textContent = watts(v).replace(".0 ", " ");
      kids.push(label);
    }
    if (elapsed) {
      const xStep = Math.max(1000, step(windowMs, Math.max(2, Math.floor(width / 110))));
      for (let k = 0; k <= windowMs + 1e-9; k += xStep) {
        const at = x(t0 + k);
        const anchor = k === 0 ? "start" : at > width - m.r - 24 ? "end" : "middle";
        const label = svg("text", { x: at, y: height - 6, "text-anchor": anchor });
        label.textContent = k === 0 ? "start" : `+${duration(k)}`;
        kids.push(label);
      }
    } else {
      const minutes = windowMs / 60000;
      const xStepMin = minutes > 4 ? 1 : 0.5;
      for (let k = 0; k <= minutes + 1e-9; k += xStepMin) {
        const t = nowMs - k * 60000;
        const label = svg("text", { x: x(t), y: height - 6, "text-anchor": k === 0 ? "end" : "middle" });
        label.textContent = k === 0 ? "now" : `−${k} min`;
        kids.push(label);
      }
    }
    const path = (pts) => pts.filter(([t]) => t >= t0)
      .map(([t, v], i) => `${i ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join("");
    for (const { s, pts } of stacked) {
      const shown = pts.filter(([t]) => t >= t0);
      if (shown.length < 2) continue;
      const upper = shown.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`);
      const lower = shown.slice().reverse().map(([t, , b]) => `${x(t).toFixed(1)},${y(b).toFixed(1)}`);
      kids.push(svg("path", { d: `M${upper.join("L")}L${lower.join("L")}Z`, fill: s.color,
        "fill-opacity": 0.55, stroke: s.color, "stroke-width": 1 }));
    }
    for (const s of series.filter((x) => !x.area)) {
      const d = path(s.points);
      if (!d) continue;
      const a = { d, fill: "none", stroke: s.color, "stroke-width": s.dash ? 1.5 : 2 };
      if (s.dash) a["stroke-dasharray"] = "6 4";
      kids.push(svg("path", a));
      if (!s.dash) {
        // The newest point marked, so that a line of one point shows too.
        const [t, v] = s.points[s.points.length - 1];
        kids.push(svg("circle", { cx: x(t), cy: y(v), r: 3, fill: s.color }));
      }
    }
    node.setAttribute("viewBox", `0 0 ${width} ${height}`);
    node.replaceChildren(...kids);
    if (legendNode) {
      legendNode.replaceChildren(...series.filter((s) => !s.hideLegend).map((s) => {
        const item = el("span", {}, s.name);
        const swatch = el("i");
        swatch.style.background = s.color;
        if (s.dash) swatch.style.opacity = "0.5";
        item.prepend(swatch);
        return item;
      }));
    }
  }

  /** Keeps points newer than `keepMs` before the newest one. */
  function trim(points, keepMs) {
    if (!points.length) return;
    const last = points[points.length - 1][0];
    while (points.length && points[0][0] < last - keepMs) points.shift();
  }

  /**
   * Saves what a documented route answers (with the token) as the file `name`: the page fetches
   * it, so that a token is never put in a link.
   */
  async function download(path, name) {
    const headers = {};
    const t = token();
    if (t) headers.Authorization = "Bearer " + t;
    const r = await fetch(path, { headers, cache: "no-store" });
    if (!r.ok) throw new Error(`${path}: ${r.status} ${r.statusText}`);
    const url = URL.createObjectURL(await r.blob());
    const a = el("a", { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  /** `n` and the noun, singular for one: `1 node`, `3 nodes`. */
  function count(n, noun, plural) {
    return `${n} ${n === 1 ? noun : plural || noun + "s"}`;
  }

  return { PALETTE, tokenForm, get, download, watts, joules, clock, duration, count, el, rows,
    status, chart, trim };
})();
