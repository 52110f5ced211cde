// A run's page: progress, the live figures of the running points and charts of the run so
// far (from its own Prometheus), the finished points' figures, the SLURM queue with cancel
// buttons, monitoring links, and a browser of the run's logs and results. Polls every 2 s
// while the run is going.
"use strict";
const run = document.getElementById("run-script").dataset.run;
const base = `/api/runs/${encodeURIComponent(run)}`;
let cwd = "";

async function api(path, options = {}) {
  const resp = await fetch(base + path, {credentials: "same-origin", ...options});
  let body = {};
  try { body = await resp.json(); } catch (e) { body = {error: resp.statusText}; }
  return {status: resp.status, body};
}

function cell(row, text) { const td = row.insertCell(); td.textContent = text; return td; }

async function progress() {
  const {status, body} = await api("/progress");
  if (status !== 200) { document.getElementById("state").textContent = "error: " + body.error; return "error"; }
  document.getElementById("bar").value = body.percent;
  document.getElementById("percent").textContent = `${body.percent} %`;
  document.getElementById("state").textContent = body.state + (body.returncode ? ` (exit ${body.returncode})` : "");
  document.getElementById("points").textContent = `${body.done} of ${body.total} points done`;
  document.getElementById("current").textContent = body.current ? `running: ${body.current}` : "";
  document.getElementById("log-tail").textContent = body.log_tail;
  const link = document.getElementById("report-link");
  link.hidden = !body.report;
  link.href = `/runs/${encodeURIComponent(run)}/report`;
  document.getElementById("stop-run").hidden = body.state !== "running" || !body.launched;
  if (body.live) live(body.live);
  return body.state;
}

// -- figures as text, as `llmsweep status` writes them (llmsweep/live/text.py) ------------
function duration(s) {
  if (s === null || s === undefined) return "?";
  s = Math.round(s);
  if (s < 60) return `${s}s`;
  const two = (n) => String(n).padStart(2, "0");
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  return `${Math.floor(s / 3600)}h${two(Math.floor((s % 3600) / 60))}m`;
}
function latency(s) {
  if (s === null || s === undefined) return "-";
  if (s < 0.01) return `${(s * 1000).toFixed(1)} ms`;
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  return `${s.toFixed(2)} s`;
}
function fixed(v, digits) { return v === null || v === undefined ? "-" : v.toFixed(digits); }

function row(tbody, values, name) {
  const tr = tbody.insertRow();
  tr.dataset.point = name;
  values.forEach((v, i) => { const td = cell(tr, v); if (i) td.className = "num"; });
}

function live(pic) {
  const parts = [`${pic.done} of ${pic.total} points done`];
  if (pic.running.length) parts.push(`${pic.running.length} running`);
  if (pic.failed.length) parts.push(`${pic.failed.length} failed or cut off`);
  if (pic.state === "running" && pic.done < pic.total) parts.push(`sweep ETA ${duration(pic.eta_s)}`);
  document.getElementById("sweep-line").textContent = parts.join(", ");
  const running = document.querySelector("#running-points tbody");
  running.replaceChildren();
  document.getElementById("running-points").hidden = !pic.running.length;
  for (const p of pic.running) {
    const f = p.live;
    const requests = f.time_left_s !== null && f.time_left_s !== undefined
      ? `${f.requests_done}, ${duration(f.time_left_s)} left` : `${f.requests_done}/${f.requests_total ?? "?"}`;
    const name = `${p.deployment} ${p.load}`;
    row(running, [`${name} (${p.describe})`, requests, fixed(f.requests_per_s, 2),
      fixed(f.output_tokens_per_s, 1), latency(f.ttft_p50_s), latency(f.itl_p50_s),
      String(f.errors), f.in_flight ?? "-", duration(f.eta_s)], name);
  }
  const finished = document.querySelector("#finished-points tbody");
  finished.replaceChildren();
  for (const p of pic.points.filter((q) => q.state === "done")) {
    const f = p.summary;
    const name = `${p.deployment} ${p.load}`;
    row(finished, [name, String(f.requests), String(f.errors), fixed(f.requests_per_s, 2),
      fixed(f.output_tokens_per_s, 1), latency(f.ttft_p50_s), latency(f.ttft_p99_s),
      latency(f.itl_p50_s), duration(f.duration_s)], name);
  }
}

// -- small SVG charts of the run so far ------------------------------------------------------
const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#1d3557", "#e63946", "#2a9d8f", "#f4a261", "#6a4c93", "#8d99ae"];

function svg(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function clock(t) { return new Date(t * 1000).toTimeString().slice(0, 8); }

function short(v) {
  if (v === 0) return "0";
  if (Math.abs(v) >= 1000) return `${(v / 1000).toPrecision(3)}k`;
  return Math.abs(v) >= 10 ? v.toFixed(0) : v.toPrecision(2);
}

// A line chart: x from start to end (seconds), y from 0 to the largest value; a gap in a
// series (null: no data) breaks its line. Each path keeps its data in data-values.
function chart(c, start, end) {
  const W = 340, H = 130, L = 40, R = 8, T = 8, B = 18;
  const fig = document.createElement("figure");
  fig.className = "chart";
  fig.dataset.chart = c.id;
  const caption = document.createElement("figcaption");
  caption.textContent = `${c.title}${c.unit ? ` (${c.unit})` : ""}`;
  let max = 0;
  for (const s of c.series) for (const [, v] of s.points) if (v !== null) max = Math.max(max, v);
  if (max <= 0) max = 1;
  const x = (t) => L + ((t - start) / ((end - start) || 1)) * (W - L - R);
  const y = (v) => T + (1 - v / max) * (H - T - B);
  const plot = svg("svg", {class: "chart", width: W, height: H, viewBox: `0 0 ${W} ${H}`});
  plot.append(
    svg("line", {x1: L, y1: T, x2: L, y2: H - B, stroke: "#999"}),
    svg("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999"}),
    svg("text", {x: L - 4, y: T + 8, "text-anchor": "end"}, short(max)),
    svg("text", {x: L - 4, y: H - B, "text-anchor": "end"}, "0"),
    svg("text", {x: L, y: H - 4}, clock(start)),
    svg("text", {x: W - R, y: H - 4, "text-anchor": "end"}, clock(end)),
  );
  const legend = document.createElement("div");
  legend.className = "legend";
  c.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    let d = "", open = false;
    s.points.forEach(([t, v], k) => {
      if (v === null) { open = false; return; }
      const lone = !open && (k + 1 >= s.points.length || s.points[k + 1][1] === null);
      d += `${open ? "L" : "M"}${x(t).toFixed(1)} ${y(v).toFixed(1)} `;
      if (lone) d += `L${x(t).toFixed(1)} ${y(v).toFixed(1)} `;  // a point alone: a dot
      open = true;
    });
    const path = svg("path", {class: "series", d: d.trim(), stroke: color, "stroke-linecap": "round"});
    path.dataset.series = s.name;
    path.dataset.values = JSON.stringify(s.points);
    plot.append(path);
    const key = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = color;
    key.append(swatch, s.name);
    legend.append(key);
  });
  if (!c.series.length) legend.textContent = "no data yet";
  fig.append(caption, plot, legend);
  return fig;
}

async function charts() {
  const {status, body} = await api("/charts");
  const note = document.getElementById("charts-note");
  const box = document.getElementById("charts");
  if (status !== 200 || !body.available) {
    // Keep what was drawn: the run's Prometheus stops with the run.
    note.textContent = status !== 200 ? body.error : `Charts: ${body.note}.`;
    return;
  }
  box.dataset.range = JSON.stringify({start: body.start, end: body.end, step: body.step, interval: body.interval});
  box.replaceChildren(...body.charts.map((c) => chart(c, body.start, body.end)));
  note.textContent = `From the run's Prometheus (${body.prometheus}), every ${body.step} s, rates over ${body.interval}.`;
}

async function queue() {
  const {status, body} = await api("/queue");
  const tbody = document.querySelector("#queue tbody");
  tbody.replaceChildren();
  const note = document.getElementById("queue-note");
  if (status !== 200) { note.textContent = body.error; return; }
  note.textContent = body.slurm ? (body.jobs.length ? "" : "No job of this run in the queue.") : `No SLURM queue (${body.note}).`;
  for (const job of body.jobs) {
    const row = tbody.insertRow();
    for (const k of ["id", "name", "state", "time", "time_limit", "partition", "nodes"]) cell(row, job[k]);
    const button = document.createElement("button");
    button.textContent = "Cancel";
    button.className = "cancel";
    button.dataset.job = job.id;
    button.addEventListener("click", async () => {
      button.disabled = true;
      const r = await api(`/jobs/${encodeURIComponent(job.id)}/cancel`, {method: "POST"});
      note.textContent = r.status === 200 ? `cancelled ${job.id}` : r.body.error;
      queue();
    });
    row.insertCell().appendChild(button);
  }
}

async function monitoring() {
  const {status, body} = await api("/monitoring");
  const p = document.getElementById("monitoring");
  p.replaceChildren();
  if (status !== 200) { p.textContent = body.error; return; }
  const add = (label, url, extra) => {
    const a = document.createElement("a");
    a.href = url; a.textContent = `${label}: ${url}`; a.target = "_blank"; a.rel = "noopener";
    a.className = "monitoring-link";
    p.append(a, extra ? ` ${extra}` : "", document.createElement("br"));
  };
  if (body.grafana) add("Grafana", body.grafana.url, `(user ${body.grafana.user}, password in ${body.grafana.password_file}${body.tunnel ? "; through an SSH tunnel to " + body.grafana.remote_url : ""})`);
  if (body.prometheus) add("Prometheus", body.prometheus.url, `(user ${body.prometheus.user}, password in ${body.prometheus.password_file}${body.tunnel ? "; through an SSH tunnel to " + body.prometheus.remote_url : ""})`);
  if (!body.grafana && !body.prometheus) p.textContent = "Not running (monitoring runs while the sweep does).";
}

async function files(path) {
  const {status, body} = await api(`/files?path=${encodeURIComponent(path)}`);
  if (status !== 200) return;
  cwd = body.path;
  document.getElementById("cwd").textContent = "/" + cwd;
  const tbody = document.querySelector("#files tbody");
  tbody.replaceChildren();
  if (cwd) {
    const up = tbody.insertRow();
    const a = document.createElement("a");
    a.href = "#"; a.textContent = ".."; a.className = "dir";
    a.addEventListener("click", (e) => { e.preventDefault(); files(cwd.split("/").slice(0, -1).join("/")); });
    up.insertCell().appendChild(a); cell(up, ""); cell(up, "");
  }
  for (const entry of body.entries) {
    const row = tbody.insertRow();
    const a = document.createElement("a");
    a.textContent = entry.name + (entry.dir ? "/" : "");
    if (entry.dir) {
      a.href = "#"; a.className = "dir";
      a.addEventListener("click", (e) => { e.preventDefault(); files(entry.path); });
    } else {
      a.href = `/runs/${encodeURIComponent(run)}/view?path=${encodeURIComponent(entry.path)}`;
      a.className = "file";
    }
    row.insertCell().appendChild(a);
    cell(row, entry.dir ? "" : String(entry.size));
    const dl = document.createElement("a");
    if (!entry.dir) { dl.href = `/runs/${encodeURIComponent(run)}/download?path=${encodeURIComponent(entry.path)}`; dl.textContent = "download"; }
    row.insertCell().appendChild(dl);
  }
}

fetch("/api/target", {credentials: "same-origin"}).then((r) => r.json()).then((t) => {
  document.getElementById("target-line").textContent =
    t.kind === "ssh" ? `${t.user}@${t.host}:${t.port} ${t.workdir}` : `this machine, ${t.workdir}`;
});

document.getElementById("stop-run").addEventListener("click", () => api("/stop", {method: "POST"}));

async function tick() {
  const state = await progress();
  await Promise.all([queue(), monitoring(), files(cwd), charts()]);
  if (state === "running") setTimeout(tick, 2000);
}
tick();
