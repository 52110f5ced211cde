// A run's page: progress, the SLURM queue with cancel buttons, monitoring links, and a
// browser of the run's logs and results. Polls every 2 s while the run is going.
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
  document.getElementById("stop-run").hidden = body.state !== "running";
  return body.state;
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
  if (body.prometheus) add("Prometheus", body.prometheus.url, body.tunnel ? `(through an SSH tunnel to ${body.prometheus.remote_url})` : "");
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
  await Promise.all([queue(), monitoring(), files(cwd)]);
  if (state === "running") setTimeout(tick, 2000);
}
tick();
