// The plastic dashboard. Plain JavaScript, no build step. Every value from the fleet is
// written with textContent (never innerHTML): a node name or output cannot inject markup.
"use strict";

// Uncaught errors are kept (and shown at the top): the page must never fail silently, and
// the browser tests read them in every browser.
const plasticPageErrors = [];
window.plasticPageErrors = plasticPageErrors;
function pageError(text) {
  plasticPageErrors.push(text);
  const s = document.getElementById("page-error");
  if (s) {
    s.textContent = "page error: " + text;
    s.hidden = false;
  }
}
window.addEventListener("error", (ev) => pageError(String(ev.message)));
window.addEventListener("unhandledrejection", (ev) => pageError(String(ev.reason && ev.reason.message || ev.reason)));

const $ = (id) => document.getElementById(id);
const state = { csrf: null, nodes: new Map(), shown: 200, current: null, stream: null, dirty: false };

async function api(method, path, body, raw) {
  const headers = {};
  if (state.csrf) headers["X-CSRF-Token"] = state.csrf;
  let payload;
  if (raw !== undefined) {
    payload = raw;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const r = await fetch("/api/v1" + path, { method, headers, body: payload, credentials: "same-origin" });
  const type = r.headers.get("content-type") || "";
  const data = type.includes("json") ? await r.json() : await r.blob();
  if (!r.ok) {
    const e = new Error((data.error && data.error.message) || r.statusText);
    e.status = r.status;
    e.kind = data.error && data.error.kind;
    throw e;
  }
  return data;
}

function request(target, message, timeout) {
  return api("POST", "/requests", { target, message, timeout: timeout || 10 });
}

function outcomeText(res) {
  if (res.ok) {
    const out = res.stdout ? res.stdout : "";
    return out + JSON.stringify(res.result);
  }
  const e = res.error || {};
  return (e.traceback || "") + (e.kind || "Error") + ": " + (e.message || "");
}

function since(t) {
  if (!t) return "";
  const d = new Date(t * 1000);
  return d.toISOString().replace("T", " ").slice(0, 19);
}

function duration(s) {
  s = Math.max(0, Math.floor(s));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
}

function bytes(n) {
  if (n === undefined || n === null) return "";
  if (n < 10240) return n + " B";
  if (n < 10485760) return Math.round(n / 1024) + " KB";
  return Math.round(n / 1048576) + " MB";
}

// A presence's uptime is as of when the hub received it (`age` seconds before the list was
// read, or now for a live one): add the time since.
function uptimeNow(p) {
  if (p.state !== "online" || typeof p.uptime !== "number") return "";
  return duration(p.uptime + Date.now() / 1000 - p.receivedAt);
}

// When the hub last heard the node: now while online, else when its last presence (its
// offline or lost) reached the hub (a will's own `since` is its connection's start).
function lastSeen(p) {
  return p.state === "online" ? "now" : since(p.receivedAt);
}

// ---- login ----
async function start() {
  try {
    const s = await api("GET", "/session");
    loggedIn(s);
  } catch (e) {
    if (e.status === 401) {
      $("login").hidden = false;
    } else {
      $("summary").textContent = "cannot reach the hub: " + e.message;
    }
  }
}

function loggedIn(s) {
  state.csrf = s.csrf;
  $("login").hidden = true;
  $("app").hidden = false;
  $("who").textContent = s.authentication ? s.user + " (" + s.role + ")" : "no login (loopback)";
  $("logout").hidden = !s.authentication;
  loadNodes();
  openStream();
  route();
  loadStats();
  setInterval(loadStats, 10000);
  setInterval(render, 15000); // uptimes move on
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  try {
    const s = await api("POST", "/login", { user: $("login-user").value, password: $("login-password").value });
    s.authentication = true;
    $("login-password").value = "";
    loggedIn(s);
  } catch (e) {
    $("login-error").textContent = e.message;
  }
});

$("logout").addEventListener("click", async () => {
  await api("POST", "/logout", {});
  location.reload();
});

// ---- fleet ----
async function loadNodes() {
  const list = await api("GET", "/nodes");
  state.nodes.clear();
  const now = Date.now() / 1000;
  for (const p of list) {
    p.receivedAt = now - (p.age || 0);
    state.nodes.set(p.name, p);
  }
  render();
}

function openStream() {
  if (state.stream) state.stream.close();
  const es = new EventSource("/api/v1/stream");
  es.addEventListener("presence", (ev) => {
    const p = JSON.parse(ev.data);
    p.receivedAt = Date.now() / 1000;
    state.nodes.set(p.name, p);
    schedule();
  });
  es.addEventListener("log", (ev) => logLine(JSON.parse(ev.data)));
  es.addEventListener("event", (ev) => logLine(JSON.parse(ev.data)));
  state.stream = es;
}

// Presence can arrive thousands at a time: redraw at most every 250 ms.
function schedule() {
  if (state.dirty) return;
  state.dirty = true;
  setTimeout(() => { state.dirty = false; render(); }, 250);
}

function matches(p, words) {
  const hay = [p.name, p.state, p.platform, (p.groups || []).join(" "), p.address || ""].join(" ").toLowerCase();
  return words.every((w) => hay.includes(w));
}

function render() {
  const words = $("filter").value.toLowerCase().split(/\s+/).filter(Boolean);
  const all = [...state.nodes.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  const rows = all.filter((p) => matches(p, words));
  const online = all.filter((p) => p.state === "online").length;
  $("summary").textContent = online + " online of " + all.length;
  $("count").textContent = rows.length + " shown";
  const body = document.createElement("tbody");
  for (const p of rows.slice(0, state.shown)) {
    const tr = document.createElement("tr");
    tr.className = "state-" + p.state;
    tr.dataset.node = p.name;
    for (const v of [p.name, p.state, p.platform, (p.groups || []).join(", "), p.address || "", uptimeNow(p), p.state === "online" ? bytes(p.mem_free) : "", lastSeen(p)]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    tr.addEventListener("click", () => { location.hash = "#node/" + encodeURIComponent(p.name); });
    body.appendChild(tr);
  }
  $("nodes").replaceChild(body, $("nodes").tBodies[0]);
  $("more").hidden = rows.length <= state.shown;
  if (state.current) nodeHeader();
}

$("filter").addEventListener("input", () => { state.shown = 200; render(); });
$("more").addEventListener("click", () => { state.shown += 1000; render(); });

$("run-eval").addEventListener("click", async () => {
  const table = $("run-results");
  const body = document.createElement("tbody");
  table.hidden = false;
  try {
    const r = await request($("run-target").value, { type: "eval", to_evaluate: $("run-code").value });
    for (const res of r.results) {
      const tr = document.createElement("tr");
      const a = document.createElement("td");
      a.textContent = res.node;
      const b = document.createElement("td");
      b.textContent = outcomeText(res);
      b.className = res.ok ? "ok" : "error";
      tr.append(a, b);
      body.appendChild(tr);
    }
  } catch (e) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = 2;
    td.className = "error";
    td.textContent = e.message;
    tr.appendChild(td);
    body.appendChild(tr);
  }
  table.replaceChild(body, table.tBodies[0]);
});

// ---- charts: the last hour, from /api/v1/stats ----
const SVG = "http://www.w3.org/2000/svg";

function chart(id, values) {
  const svg = $(id);
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const present = values.filter((v) => v !== null && v !== undefined);
  const last = present.length ? present[present.length - 1] : null;
  $(id + "-now").textContent = last === null ? "" : "(" + (Math.round(last * 10) / 10) + ")";
  if (present.length < 2) return;
  const max = Math.max(...present, 1e-9);
  const step = 360 / Math.max(values.length - 1, 1);
  const points = values
    .map((v, i) => (v === null || v === undefined ? null : (i * step).toFixed(1) + "," + (58 - (v / max) * 54).toFixed(1)))
    .filter(Boolean)
    .join(" ");
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", points);
  svg.appendChild(line);
}

async function loadStats() {
  try {
    const s = await api("GET", "/stats");
    chart("chart-online", s.samples.map((x) => x.online));
    chart("chart-rps", s.samples.map((x) => x.requests_per_second));
    chart("chart-latency", s.samples.map((x) => x.latency_ms));
  } catch (e) {
    // The charts are extras: the table still works.
  }
}

// ---- one node ----
function route() {
  const m = location.hash.match(/^#node\/(.+)$/);
  state.current = m ? decodeURIComponent(m[1]) : null;
  $("fleet").hidden = !!state.current;
  $("node").hidden = !state.current;
  if (state.current) {
    $("console").textContent = "";
    $("log").textContent = "";
    nodeHeader();
    const node = state.current;
    api("GET", "/nodes/" + encodeURIComponent(node) + "/log").then((lines) => {
      if (state.current !== node) return;
      for (const l of lines) logLine({ node, kind: l.text !== undefined ? "log" : "event", sub: "", body: l });
    }).catch(() => {});
  }
}
window.addEventListener("hashchange", route);
$("back").addEventListener("click", () => { location.hash = ""; });

function nodeHeader() {
  const p = state.nodes.get(state.current);
  $("node-name").textContent = state.current;
  $("node-state").textContent = p ? p.state + " · " + p.platform + " " + p.version : "unknown";
}

function consoleAppend(text, cls) {
  const span = document.createElement("span");
  span.textContent = text + "\n";
  if (cls) span.className = cls;
  $("console").appendChild(span);
  $("console").scrollTop = $("console").scrollHeight;
}

async function run(message, label) {
  consoleAppend(">>> " + label, "input");
  try {
    const r = await request(state.current, message);
    for (const res of r.results) consoleAppend(outcomeText(res), res.ok ? "ok" : "error");
    return r.results[0];
  } catch (e) {
    consoleAppend(e.message, "error");
    return null;
  }
}

// Console history: Up and Down (with Alt, as the textarea keeps plain arrows) walk it.
const history = { lines: [], at: 0 };
function remember(code) {
  if (code && history.lines[history.lines.length - 1] !== code) history.lines.push(code);
  history.at = history.lines.length;
}
$("code").addEventListener("keydown", (ev) => {
  if (!ev.altKey || (ev.key !== "ArrowUp" && ev.key !== "ArrowDown")) return;
  ev.preventDefault();
  history.at = Math.max(0, Math.min(history.lines.length, history.at + (ev.key === "ArrowUp" ? -1 : 1)));
  $("code").value = history.lines[history.at] || "";
});
$("eval").addEventListener("click", () => { remember($("code").value); run({ type: "eval", to_evaluate: $("code").value }, $("code").value); });
$("exec").addEventListener("click", () => { remember($("code").value); run({ type: "exec", to_exec: $("code").value }, $("code").value); });
$("blink").addEventListener("click", () => run({ type: "command", command: "blink led", kwargs: { times: 3 } }, "blink led"));

async function pin(message) {
  const res = await run(message, message.command);
  if (res && res.ok) $("pin-value").textContent = JSON.stringify(res.result);
}
const pinNo = () => Number($("pin").value);
$("pin-read").addEventListener("click", () => pin({ type: "command", command: "read GPIOs", kwargs: { pins: [pinNo()] } }));
$("pin-on").addEventListener("click", () => pin({ type: "command", command: "write GPIOs", kwargs: { pins_and_values: [[pinNo(), 1]] } }));
$("pin-off").addEventListener("click", () => pin({ type: "command", command: "write GPIOs", kwargs: { pins_and_values: [[pinNo(), 0]] } }));

$("upload-go").addEventListener("click", async () => {
  const file = $("upload").files[0];
  if (!file) return;
  const path = $("upload-path").value || file.name;
  $("files-status").textContent = "uploading " + path + "…";
  try {
    const r = await api("PUT", "/nodes/" + encodeURIComponent(state.current) + "/files?path=" + encodeURIComponent(path), undefined, file);
    $("files-status").textContent = "uploaded " + r.path + " (" + r.size + " bytes, sha256 " + r.sha256 + ")";
  } catch (e) {
    $("files-status").textContent = e.message;
  }
});

$("fetch-go").addEventListener("click", async () => {
  const path = $("fetch-path").value;
  try {
    const blob = await api("GET", "/nodes/" + encodeURIComponent(state.current) + "/files?path=" + encodeURIComponent(path));
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = path.split("/").pop();
    a.click();
    $("files-status").textContent = "downloaded " + path;
  } catch (e) {
    $("files-status").textContent = e.message;
  }
});

$("script-run").addEventListener("click", async () => {
  const file = $("script-file").files[0];
  if (!file) return;
  const name = file.name.replace(/\.py$/, "").replace(/[^A-Za-z0-9_-]/g, "_");
  const res = await run({ type: "script", script: await file.text(), name }, "deploy " + name);
  $("script-status").textContent = res && res.ok ? "running " + name : "";
});
async function listFiles() {
  const res = await run({ type: "command", command: "list files" }, "list files");
  const body = document.createElement("tbody");
  if (res && res.ok) {
    for (const [path, size] of res.result) {
      const tr = document.createElement("tr");
      const name = document.createElement("td");
      name.textContent = path;
      const bytes = document.createElement("td");
      bytes.textContent = size + " B";
      const actions = document.createElement("td");
      const get = document.createElement("button");
      get.textContent = "Download";
      get.addEventListener("click", () => { $("fetch-path").value = path; $("fetch-go").click(); });
      const del = document.createElement("button");
      del.textContent = "Delete";
      del.addEventListener("click", async () => {
        if (!confirm("Delete " + path + " on " + state.current + "?")) return;
        await run({ type: "command", command: "remove file", kwargs: { filename: path } }, "remove file " + path);
        listFiles();
      });
      actions.append(get, del);
      tr.append(name, bytes, actions);
      body.appendChild(tr);
    }
  }
  $("files").replaceChild(body, $("files").tBodies[0]);
}
$("files-list").addEventListener("click", listFiles);

$("info").addEventListener("click", async () => {
  const res = await run({ type: "command", command: "info" }, "info");
  if (res && res.ok) {
    const i = res.result;
    $("running").textContent = "scripts: " + ((i.scripts || []).join(", ") || "none") +
      " · uptime " + Math.round(i.uptime || 0) + " s · free memory " + (i.free_memory === null || i.free_memory === undefined ? "?" : i.free_memory + " B");
  }
});

$("script-stop").addEventListener("click", () => run({ type: "command", command: "stop" }, "stop"));

function logLine(a) {
  if (!state.current || a.node !== state.current) return;
  const text = a.kind === "log" ? ((a.body.source ? a.body.source + ": " : "") + (a.body.text !== undefined ? a.body.text : JSON.stringify(a.body))) : (a.sub ? a.sub + ": " : "") + JSON.stringify(a.body);
  const log = $("log");
  log.appendChild(document.createTextNode(text + "\n"));
  while (log.childNodes.length > 500) log.removeChild(log.firstChild);
  log.scrollTop = log.scrollHeight;
}

start();
