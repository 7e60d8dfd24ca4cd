// powerstack dashboard, the site's job list: /v1/jobs with the form's user, since, until and
// limit (kept in the page's address, so that a search can be shared), every ten seconds.
"use strict";
(() => {
  const POLL_MS = 10000;
  const form = document.getElementById("search");
  const fields = ["user", "since", "until", "limit"];

  // A `datetime-local` value read as UTC, in µs; null when empty or malformed.
  function utcUs(value) {
    if (!value) return null;
    const ms = Date.parse(value + (value.length === 16 ? ":00Z" : "Z"));
    return isFinite(ms) ? ms * 1000 : null;
  }

  function query() {
    const q = new URLSearchParams();
    const v = (id) => document.getElementById(id).value.trim();
    if (v("user")) q.set("user", v("user"));
    for (const id of ["since", "until"]) {
      const us = utcUs(v(id));
      if (v(id) && us === null) throw new Error(`${id}: a date and time, as YYYY-MM-DD HH:MM`);
      if (us !== null) q.set(id, String(us));
    }
    if (v("limit")) q.set("limit", v("limit"));
    return q;
  }

  function row(j) {
    const tr = PS.el("tr", { "data-job": j.id });
    const link = PS.el("a", { href: `/job?id=${encodeURIComponent(j.id)}` }, j.id);
    const id = PS.el("td");
    id.append(link);
    const end = j.end_unix_us ?? null;
    const ms = ((end ?? Date.now() * 1000) - j.begin_unix_us) / 1000;
    const data = j.data_presence ? j.data_presence + (j.settled ? "" : ", settling") : "–";
    tr.append(id, PS.el("td", {}, j.user ?? "–"),
      PS.el("td", { class: "num" }, String(j.nodes.length)),
      PS.el("td", {}, PS.clock(j.begin_unix_us).replace(" UTC", "")),
      PS.el("td", {}, end === null ? "running" : PS.clock(end).replace(" UTC", "")),
      PS.el("td", { class: "num" }, PS.duration(Math.max(0, ms))),
      PS.el("td", { class: "num", "data-joules": j.energy_joules ?? "" }, PS.joules(j.energy_joules)),
      PS.el("td", { class: "num" }, PS.watts(j.mean_power_watts)),
      PS.el("td", { class: "num" }, PS.watts(j.peak_power_watts)),
      PS.el("td", {}, data));
    return tr;
  }

  async function load() {
    try {
      const q = query();
      document.getElementById("search-note").textContent = "";
      const d = await PS.get(`/v1/jobs?${q}`);
      PS.rows(document.querySelector("#jobs tbody"), d.jobs.map(row));
      document.getElementById("jobs-note").textContent = (d.jobs.length ? PS.count(d.jobs.length, "job") : "no job matches") +
        (d.truncated ? "; more match: raise the limit or narrow the search" : "");
      document.body.dataset.ready = "true";
      PS.status(`live: the list every ${POLL_MS / 1000} s`);
    } catch (e) {
      if (e.status === undefined) document.getElementById("search-note").textContent = e.message;
      PS.status(e.message, true);
    }
  }

  // The search in the address: fields from it at load, and into it at each search.
  const params = new URLSearchParams(location.search);
  for (const id of fields) if (params.has(id)) document.getElementById(id).value = params.get(id);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const shown = new URLSearchParams();
    for (const id of fields) {
      const v = document.getElementById(id).value.trim();
      if (v) shown.set(id, v);
    }
    history.replaceState(null, "", shown.toString() ? `/jobs?${shown}` : "/jobs");
    load();
  });
  PS.tokenForm(load);
  load();
  setInterval(load, POLL_MS);
})();
