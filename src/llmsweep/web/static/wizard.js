// The wizard: step through the form, validate with the workflow's own schema (on the
// target, via /api/validate), show errors next to their fields, then save or launch.
"use strict";
const form = document.getElementById("wizard");
const steps = [...document.querySelectorAll(".step")];
let step = 0;

async function api(path, options = {}) {
  const resp = await fetch("/api" + path, {
    credentials: "same-origin",
    headers: {"Content-Type": "application/json"},
    ...options,
  });
  let body = {};
  try { body = await resp.json(); } catch (e) { body = {error: resp.statusText}; }
  return {status: resp.status, body};
}

function field(name) { return form.querySelector(`[name="${CSS.escape(name)}"]`); }

function parse(input) {
  const raw = input.value.trim();
  if (raw === "") return undefined;
  const list = raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
  switch (input.dataset.type) {
    case "int": return /^-?\d+$/.test(raw) ? Number(raw) : raw;
    case "num": return isNaN(Number(raw)) ? raw : Number(raw);
    case "list-int": return list.map((s) => (/^-?\d+$/.test(s) ? Number(s) : s));
    case "list-str": return list;
    default: return raw;
  }
}

// The config: every typed field that is filled in, nested by its dotted name.
function config() {
  const cfg = {};
  for (const input of form.querySelectorAll("[data-type]")) {
    const value = parse(input);
    if (value === undefined) continue;
    const keys = input.name.split(".");
    let node = cfg;
    for (const k of keys.slice(0, -1)) node = node[k] = node[k] || {};
    node[keys[keys.length - 1]] = value;
  }
  return cfg;
}

function fill(cfg) {
  for (const input of form.querySelectorAll("[data-type]")) {
    let value = cfg;
    for (const k of input.name.split(".")) value = value == null ? undefined : value[k];
    if (value === undefined || value === null || typeof value === "object" && !Array.isArray(value)) continue;
    if (input.value !== "" && input.tagName !== "SELECT") continue;  // the user typed first
    input.value = Array.isArray(value) ? value.join(", ") : String(value);
  }
}

function clearErrors() {
  form.querySelectorAll(".field-error").forEach((e) => e.remove());
  form.querySelectorAll(".invalid").forEach((e) => e.classList.remove("invalid"));
  document.getElementById("form-errors").textContent = "";
}

// Errors next to their fields; an error of a key without a field goes below the form.
function showErrors(errors) {
  clearErrors();
  let first = null;
  for (const err of errors) {
    let input = field(err.key);
    let key = err.key;
    while (!input && key.includes(".")) { key = key.slice(0, key.lastIndexOf(".")); input = field(key); }
    const note = document.createElement("span");
    note.className = "field-error";
    note.textContent = err.message;
    if (input) {
      input.classList.add("invalid");
      input.closest("label").appendChild(note);
      const s = steps.indexOf(input.closest(".step"));
      if (first === null || s < first) first = s;
    } else {
      document.getElementById("form-errors").appendChild(note);
    }
  }
  return first;
}

function show(n) {
  step = n;
  steps.forEach((s, i) => { s.hidden = i !== n; });
  document.querySelectorAll("#steps li").forEach((li, i) => li.classList.toggle("current", i === n));
  document.getElementById("back").disabled = n === 0;
  document.getElementById("next").hidden = n === steps.length - 1;
}

async function validate() {
  const {status, body} = await api("/validate", {method: "POST", body: JSON.stringify({config: config()})});
  if (status !== 200) { showErrors([{key: "", message: body.error || "validation failed"}]); return null; }
  return body;
}

let connected = JSON.stringify(targetFields());

document.getElementById("next").addEventListener("click", async () => {
  // Leaving "Where" with other target fields than the connected ones: connect first.
  if (step === 1 && JSON.stringify(targetFields()) !== connected && !(await connect())) return;
  const result = await validate();
  if (!result) return;
  const first = showErrors(result.errors);
  // Move on unless this step (or one before it) has an error.
  if (first !== null && first <= step) { show(first); return; }
  if (step + 1 === steps.length - 1) {
    document.getElementById("review-yaml").textContent = result.yaml;
    document.getElementById("review-summary").textContent =
      result.ok ? `${result.points} sweep point(s).` : "Fix the errors above first.";
  }
  show(step + 1);
});
document.getElementById("back").addEventListener("click", () => show(Math.max(0, step - 1)));

function targetFields() {
  const kind = form.querySelector('[name="target.kind"]:checked').value;
  const value = (n) => field("target." + n).value.trim();
  return {kind, host: value("host"), port: value("port"), user: value("user"),
          key_file: value("key_file"), workflow: value("workflow"), workdir: value("workdir"),
          upload: field("target.upload").checked};
}

function toggleSsh() {
  document.getElementById("ssh-fields").hidden = targetFields().kind !== "ssh";
}
form.querySelectorAll('[name="target.kind"]').forEach((r) => r.addEventListener("change", toggleSsh));

async function connect() {
  const statusLine = document.getElementById("target-status");
  statusLine.textContent = "connecting…";
  statusLine.className = "status";
  const {status, body} = await api("/target", {method: "POST", body: JSON.stringify(targetFields())});
  if (status !== 200) {
    statusLine.textContent = body.error;
    statusLine.className = "status error";
    return false;
  }
  connected = JSON.stringify(targetFields());
  statusLine.textContent = "connected: " + describe(body) + (body.uploaded ? ` (uploaded ${body.uploaded} files)` : "");
  document.getElementById("target-line").textContent = describe(body);
  return true;
}
document.getElementById("connect").addEventListener("click", connect);

function describe(t) {
  return t.kind === "ssh" ? `${t.user}@${t.host}:${t.port} ${t.workflow}` : `this machine, ${t.workdir}`;
}

document.getElementById("save").addEventListener("click", async () => {
  const result = await validate();
  if (!result) return;
  const blob = new Blob([result.yaml], {type: "application/yaml"});
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = `${config().run || "llmsweep"}.yaml`;
  a.click();
});

document.getElementById("launch").addEventListener("click", async () => {
  const line = document.getElementById("launch-status");
  const profile = field("profile").value;
  line.textContent = "launching…";
  const {status, body} = await api("/runs", {method: "POST", body: JSON.stringify({config: config(), profile})});
  if (status === 201) {
    window.location.href = `/runs/${encodeURIComponent(body.run)}`;
    return;
  }
  line.textContent = body.error || "launch failed";
  line.className = "status error";
  if (body.errors) { const first = showErrors(body.errors); if (first !== null) show(first); }
});

(async () => {
  show(0);
  toggleSsh();
  const t = await api("/target");
  if (t.status === 200) document.getElementById("target-line").textContent = describe(t.body);
  const {status, body} = await api("/defaults");
  if (status === 200) fill(body.config);
  form.dataset.ready = "1";
})();
