// bqnn dashboard and report page. Live: the views come from the dashboard's server (/api/..., every 2 s while a
// search runs). Static (report/index.html): window.BQNN_DATA holds the same views, and nothing is fetched.
"use strict";

const DATA = window.BQNN_DATA || null;
const POLL_MS = 2000;
const ROW_LIMIT = 500;
const SHOWN_COLS = [["id", "id"], ["iteration", "iter"], ["status", "status"], ["reward", "reward"],
  ["accuracy", "accuracy %"], ["flops", "MFLOPs"], ["params", "params"], ["rank", "rank"], ["host", "host"],
  ["seconds", "seconds"], ["epochs", "epochs"], ["hash", "block"]];
const OUTCOME = { ok: "#1f77b4", pruned: "#9ca3af", error: "#d62728", nan: "#ff7f0e", oom: "#8c564b",
  rejected: "#e377c2", lost: "#7f7f7f", device: "#17becf" };

const state = { run: 0, runs: [], overview: {}, rows: {}, columns: {}, statuses: {}, sort: ["id", 1],
  filter: "", picked: null, view: "overview", charts: {} };

async function get(path) {
  const r = await fetch(path, { cache: "no-store" });
  const body = await r.json();
  if (!r.ok && !body.error) throw new Error(`${path}: ${r.status}`);
  return body;
}

const api = {
  runs: async () => DATA ? DATA.runs.map((r, k) => ({ id: k, name: r.overview.name, dir: r.overview.dir }))
    : get("api/runs"),
  overview: async (k) => DATA ? DATA.runs[k].overview : get(`api/run/${k}`),
  candidates: async (k, since) => DATA ? (since ? { rows: [], total: since } : DATA.runs[k].candidates)
    : get(`api/run/${k}/candidates?since=${since}`),
  candidate: async (k, id) => DATA ? staticCandidate(k, id) : get(`api/run/${k}/candidate/${id}`),
};

function staticCandidate(k, id) {  // the report keeps one detail per block (repeats share their source's)
  const row = (state.rows[k] || []).find((r) => r[col(k, "id")] === id);
  const d = row && DATA.runs[k].details[row[col(k, "hash")]];
  return d ? Object.assign({}, d, { id }) : { error: "this candidate's details are not in the report" };
}

function el(tag, attrs = {}, text = "") {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text) e.textContent = text;
  return e;
}

function fmtTime(s) {
  if (s === null || s === undefined) return "-";
  s = Math.max(0, Math.floor(s));
  return `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

function col(k, name) { return state.columns[k].indexOf(name); }

function chart(id, config) {
  if (state.charts[id]) state.charts[id].destroy();
  config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false }, config.options);
  state.charts[id] = new Chart(document.getElementById(id), config);
  return state.charts[id];
}

// ------------------------------------------------------------------ overview

const epsilonBands = {
  id: "epsilonBands",
  beforeDatasetsDraw(c, args, opts) {
    const its = opts.iterations || [];
    if (!its.length) return;
    const { ctx, chartArea: a, scales: { x } } = c;
    let start = 0;
    let band = 0;
    for (let i = 1; i <= its.length; i++) {
      if (i === its.length || its[i].epsilon !== its[start].epsilon) {
        const x0 = x.getPixelForValue(its[start].iteration + 0.5), x1 = x.getPixelForValue(its[i - 1].iteration + 1.5);
        ctx.save();
        if (band % 2) { ctx.fillStyle = "#eef0f3"; ctx.fillRect(x0, a.top, x1 - x0, a.bottom - a.top); }
        ctx.fillStyle = "#57606a"; ctx.font = "11px sans-serif"; ctx.textAlign = "center";
        ctx.fillText(`ε=${its[start].epsilon}`, (x0 + x1) / 2, a.top + 12);
        ctx.restore();
        band += 1;
        start = i;
      }
    }
  },
};

function drawOverview() {
  const o = state.overview[state.run];
  const live = o.live;
  const s = document.getElementById("state");
  if (o.error) { s.textContent = o.error; s.className = "dead"; return; }
  const ended = live && live.state !== "running";
  s.textContent = o.running ? `running (${o.why})` : live && !ended ? `not running: ended without a word (${o.why})`
    : `not running${live ? ": " + live.state : ""}`;
  s.className = o.running ? "running" : (live && !ended ? "dead" : "ended");
  const c = o.config;
  document.getElementById("summary").textContent = `${o.strategy}: ${o.iteration} of ${o.iterations_total} iterations ` +
    `complete, ${o.candidates} candidates; ${c.dataset} at ${c.resize || "full"} px, ${c.epochs} epochs, filters ` +
    `[${c.filters}] x ${c.blocks_per_stage}, reward ${c.reward}, pruning ${c.pruning}; elapsed ${fmtTime(o.elapsed)}` +
    (live && live.eta_seconds !== null && o.running ? `, ETA ${fmtTime(live.eta_seconds)}` : "") +
    (o.best ? `; best reward ${o.best.reward.toFixed(2)} (accuracy ${o.best.accuracy.toFixed(2)} %)` : "");
  const its = o.iterations;
  const xy = (key) => its.map((r) => ({ x: r.iteration + 1, y: r[key] }));
  chart("rewards", {
    type: "line",
    data: { datasets: [
      { label: "lowest", data: xy("min"), borderWidth: 0, pointRadius: 0, backgroundColor: "rgba(31,119,180,0.10)", fill: false },
      { label: "range of the iteration", data: xy("max"), borderWidth: 0, pointRadius: 0, backgroundColor: "rgba(31,119,180,0.10)", fill: "-1" },
      { label: "lower quartile", data: xy("q25"), borderWidth: 0, pointRadius: 0, backgroundColor: "rgba(31,119,180,0.22)", fill: false },
      { label: "middle half", data: xy("q75"), borderWidth: 0, pointRadius: 0, backgroundColor: "rgba(31,119,180,0.22)", fill: "-1" },
      { label: "mean reward", data: xy("mean"), borderColor: "#1f77b4", pointRadius: its.length > 60 ? 0 : 3 },
      { label: "best so far", data: xy("best"), borderColor: "#d62728", pointRadius: its.length > 60 ? 0 : 3, stepped: true },
    ] },
    options: {
      parsing: false,
      scales: { x: { type: "linear", title: { display: true, text: "iteration" }, ticks: { precision: 0 },
        min: 0.5, max: Math.max(1.5, its.length + 0.5) }, y: { title: { display: true, text: "reward" } } },
      plugins: { epsilonBands: { iterations: its }, legend: { labels: { filter: (i) => !/lower quartile|lowest/.test(i.text) } } },
    },
    plugins: [epsilonBands],
  });
  const table = document.getElementById("ranks");
  table.replaceChildren();
  const head = el("tr");
  for (const h of ["rank", "host", "state", "for", "candidate", "block", "epoch", "rung acc.", "why"]) head.append(el("th", {}, h));
  table.append(head);
  for (const r of (live ? live.ranks : [])) {
    const tr = el("tr");
    const busy = r.state === "training";
    for (const v of [r.rank, r.host, r.state, fmtTime(live.updated - r.since), busy ? r.candidate : "-", busy ? r.hash : "-",
      busy ? `${r.epoch}/${live.epochs}` : "-", busy && r.rung_accuracy !== null ? r.rung_accuracy.toFixed(2) : "-", r.why]) {
      tr.append(el("td", {}, String(v)));
    }
    table.append(tr);
  }
}

// ---------------------------------------------------------------- candidates

function parseFilter(text) {
  const tests = [];
  for (const part of text.trim().split(/\s+/).filter(Boolean)) {
    const m = part.match(/^(\w+)(<=|>=|=|<|>)(.+)$/);
    if (!m) { tests.push((row, get) => Object.values(row).some((v) => String(v).includes(part))); continue; }
    const [, key, op, raw] = m;
    const num = Number(raw);
    tests.push((row, get) => {
      const v = get(row, key);
      if (v === undefined) return false;
      if (op === "=") return String(v) === raw || (typeof v === "number" && v === num);
      if (Number.isNaN(num) || v === null) return false;
      return op === "<" ? v < num : op === ">" ? v > num : op === "<=" ? v <= num : v >= num;
    });
  }
  return tests;
}

function drawTable() {
  const k = state.run;
  const rows = state.rows[k] || [];
  const get = (row, key) => key === "status" ? state.statuses[k][row[col(k, "status")]]
    : key === "flops" ? row[col(k, "flops")] / 1e6 : row[col(k, key)];
  const tests = parseFilter(state.filter);
  let shown = rows.filter((r) => tests.every((t) => t(r, get)));
  const [key, dir] = state.sort;
  shown.sort((a, b) => { const x = get(a, key), y = get(b, key); return (x < y ? -1 : x > y ? 1 : 0) * dir; });
  document.getElementById("shown").textContent = `${shown.length} of ${rows.length} candidates` +
    (shown.length > ROW_LIMIT ? ` (the first ${ROW_LIMIT} shown: sort or filter for the others)` : "");
  shown = shown.slice(0, ROW_LIMIT);
  const table = document.getElementById("cands");
  table.replaceChildren();
  const thead = el("thead"), head = el("tr");
  for (const [name, label] of SHOWN_COLS) {
    const th = el("th", { "data-col": name }, label);
    if (key === name) th.className = dir > 0 ? "sorted up" : "sorted";
    th.onclick = () => { state.sort = [name, key === name ? -dir : -1]; drawTable(); };
    head.append(th);
  }
  thead.append(head);
  const tbody = el("tbody");
  for (const r of shown) {
    const tr = el("tr", { "data-id": r[col(k, "id")] });
    if (r[col(k, "id")] === state.picked) tr.className = "pick";
    for (const [name] of SHOWN_COLS) {
      let v = get(r, name);
      if (typeof v === "number" && !Number.isInteger(v)) v = v.toFixed(name === "flops" ? 3 : 2);
      if (name === "repeat" || (name === "rank" && v === -1)) v = v === -1 ? "cache" : v;
      tr.append(el("td", name === "hash" || name === "host" || name === "status" ? { class: "text" } : {},
        v === null ? "-" : String(v)));
    }
    tr.onclick = () => pick(r[col(k, "id")]);
    tbody.append(tr);
  }
  table.append(thead, tbody);
}

async function pick(id) {
  state.picked = id;
  const d = await api.candidate(state.run, id);
  const box = document.getElementById("detail");
  box.replaceChildren();
  if (d.error) { box.append(el("p", { class: "warn" }, d.error)); return; }
  box.append(el("h2", {}, `candidate ${d.id}: ${d.status}, reward ${d.reward.toFixed(2)}`));
  box.append(el("code", {}, d.nsc));
  const holder = el("div", { class: "chart" });
  holder.append(el("canvas", { id: "curve" }));
  box.append(holder);
  chart("curve", {
    type: "line",
    data: { datasets: [
      { label: "validation accuracy", data: d.curve.map(([e, a]) => ({ x: e, y: a })), borderColor: "#1f77b4", pointRadius: 4 },
      { label: "pruning cut-off at the rung", data: d.rungs.map((e, i) => ({ x: e, y: d.cutoffs[i] })).filter((p) => p.y !== null),
        showLine: false, pointStyle: "line", pointRadius: 12, borderColor: "#d62728", borderWidth: 3 },
    ] },
    options: { parsing: false, scales: { x: { type: "linear", min: 0, max: d.epochs_total, ticks: { precision: 0 },
      title: { display: true, text: "epoch" } }, y: { title: { display: true, text: "accuracy %" } } } },
  });
  if (!d.curve.length) box.append(el("p", { class: "note" }, "No epoch was measured for this candidate " +
    "(pruning and pruning.record were off, or it failed): its final accuracy is in the table."));
  box.append(blockSvg(d.drawing));
  if (d.message) box.append(el("p", { class: "note" }, d.message));
  drawTable();
}

function blockSvg(g) {
  const ns = "http://www.w3.org/2000/svg";
  const w = 130, h = 26, dx = 150, dy = 54;
  const width = Math.max(1, g.width) * dx + 20, height = g.rows * dy + 10;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "block");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("style", "max-width: 100%; height: auto");
  const defs = document.createElementNS(ns, "defs");
  defs.innerHTML = '<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" ' +
    'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#666"/></marker>';
  svg.append(defs);
  const at = {};
  for (const [id, label, row, x, kind] of g.nodes) at[id] = { label, kind, cx: width / 2 + x * dx, cy: row * dy + 20 };
  for (const [a, b] of g.edges) {
    const line = document.createElementNS(ns, "line");
    line.setAttribute("x1", at[a].cx); line.setAttribute("y1", at[a].cy + h / 2);
    line.setAttribute("x2", at[b].cx); line.setAttribute("y2", at[b].cy - h / 2);
    line.setAttribute("marker-end", "url(#arrow)");
    svg.append(line);
  }
  for (const n of Object.values(at)) {
    const r = document.createElementNS(ns, "rect");
    r.setAttribute("x", n.cx - w / 2); r.setAttribute("y", n.cy - h / 2); r.setAttribute("width", w);
    r.setAttribute("height", h); r.setAttribute("rx", 6); r.setAttribute("class", n.kind === "layer" ? "layer" : "io");
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", n.cx); t.setAttribute("y", n.cy + 4); t.setAttribute("text-anchor", "middle");
    t.textContent = n.label;
    svg.append(r, t);
  }
  return svg;
}

// -------------------------------------------------------- timeline, Pareto, compare

function trainedRows(k) {
  const rows = state.rows[k] || [];
  return rows.filter((r) => r[col(k, "repeat")] === 0 && r[col(k, "started")] > 0);
}

function drawTimeline() {
  const k = state.run;
  const rows = trainedRows(k);
  const t0 = rows.length ? Math.min(...rows.map((r) => r[col(k, "started")])) : 0;
  const t1 = rows.length ? Math.max(...rows.map((r) => r[col(k, "ended")])) : 0;
  const [unit, scale] = t1 - t0 > 7200 ? ["hours", 3600] : t1 - t0 > 300 ? ["minutes", 60] : ["seconds", 1];
  const ranks = [...new Set(rows.map((r) => r[col(k, "rank")]))].sort((a, b) => a - b);
  const data = rows.map((r) => ({ y: `rank ${r[col(k, "rank")]}`, x: [(r[col(k, "started")] - t0) / scale,
    (r[col(k, "ended")] - t0) / scale], status: state.statuses[k][r[col(k, "status")]], id: r[col(k, "id")] }));
  chart("timeline", {
    type: "bar",
    data: { labels: ranks.map((r) => `rank ${r}`), datasets: [{ label: "trainings", data,
      backgroundColor: data.map((d) => OUTCOME[d.status] || "#999"), borderSkipped: false, barPercentage: 0.8 }] },
    options: { indexAxis: "y", scales: { x: { type: "linear", title: { display: true, text: `${unit} since the first training` } } },
      plugins: { legend: { display: false }, tooltip: { callbacks: { label: (c) => `candidate ${c.raw.id}: ${c.raw.status}` } } } },
  });
}

function paretoFront(points) {
  const sorted = [...points].sort((a, b) => a.x - b.x || b.y - a.y);
  const front = [];
  let best = -Infinity;
  for (const p of sorted) if (p.y > best) { front.push(p); best = p.y; }
  return front;
}

function drawPareto() {
  const k = state.run;
  const ok = trainedRows(k).length ? (state.rows[k] || []) : (state.rows[k] || []);
  const pts = ok.filter((r) => r[col(k, "repeat")] === 0 && state.statuses[k][r[col(k, "status")]] === "ok")
    .map((r) => ({ x: r[col(k, "flops")] / 1e6, y: r[col(k, "accuracy")], id: r[col(k, "id")] }));
  chart("pareto", {
    type: "scatter",
    data: { datasets: [
      { label: "blocks trained to the end", data: pts, backgroundColor: "rgba(31,119,180,0.5)", pointRadius: 3 },
      { label: "Pareto front", data: paretoFront(pts), showLine: true, borderColor: "#d62728", backgroundColor: "#d62728", pointRadius: 4 },
    ] },
    options: { parsing: false, scales: { x: { type: "logarithmic", title: { display: true, text: "MFLOPs per image" } },
      y: { title: { display: true, text: "validation accuracy %" } } },
      onClick: (e, items) => { if (items.length) { showView("candidates"); pick(items[0].element.$context.raw.id); } } },
  });
}

function bestSoFar(k) {
  const rows = (state.rows[k] || []).filter((r) => r[col(k, "repeat")] === 0 &&
    state.statuses[k][r[col(k, "status")]] !== "rejected").sort((a, b) => a[col(k, "id")] - b[col(k, "id")]);
  let best = -Infinity;
  return rows.map((r, i) => { best = Math.max(best, r[col(k, "reward")]); return { x: i + 1, y: best }; });
}

function drawCompare() {
  const colors = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
  const keys = ["dataset", "resize", "train_subset", "val_size", "epochs", "trainer", "filters", "blocks_per_stage", "reward"];
  const cfgs = state.runs.map((r) => state.overview[r.id] && state.overview[r.id].config).filter(Boolean);
  const differ = keys.filter((key) => new Set(cfgs.map((c) => JSON.stringify(c[key]))).size > 1);
  const note = document.getElementById("comparable");
  note.textContent = state.runs.length < 2 ? "One run is served: start the dashboard with several directories to see them side by side."
    : differ.length ? `Not comparable: ${differ.join(", ")} differ between these runs.` : "";
  note.className = differ.length ? "warn" : "note";
  chart("compare", {
    type: "line",
    data: { datasets: state.runs.map((r, i) => ({ label: r.name, data: bestSoFar(r.id), borderColor: colors[i % colors.length],
      pointRadius: 0, stepped: true })) },
    options: { parsing: false, scales: { x: { type: "linear", title: { display: true, text: "networks trained" }, ticks: { precision: 0 } },
      y: { title: { display: true, text: "best reward so far" } } } },
  });
}

// ---------------------------------------------------------------- plumbing

function showView(name) {
  state.view = name;
  for (const b of document.querySelectorAll("nav button")) b.classList.toggle("on", b.dataset.view === name);
  for (const s of document.querySelectorAll(".view")) s.classList.toggle("on", s.id === `view-${name}`);
  draw();
}

function draw() {
  if (!state.overview[state.run]) return;
  drawOverview();
  if (state.view === "candidates") drawTable();
  if (state.view === "timeline") drawTimeline();
  if (state.view === "pareto") drawPareto();
  if (state.view === "compare") drawCompare();
}

async function refresh(k) {
  const o = await api.overview(k);
  state.overview[k] = o;
  if (o.error) return;
  const have = (state.rows[k] || []).length;
  const c = await api.candidates(k, have);
  if (!state.rows[k]) state.rows[k] = [];
  state.columns[k] = c.columns || state.columns[k];
  state.statuses[k] = c.statuses || state.statuses[k];
  state.rows[k].push(...c.rows);
}

async function tick() {
  try {
    for (const r of state.runs) await refresh(r.id);
    draw();
  } catch (e) {
    document.getElementById("state").textContent = `cannot read the dashboard's server: ${e.message}`;
  }
  const live = state.runs.some((r) => state.overview[r.id] && state.overview[r.id].running);
  if (!DATA) setTimeout(tick, live ? POLL_MS : 5 * POLL_MS);
}

async function start() {
  state.runs = await api.runs();
  const select = document.getElementById("run");
  for (const r of state.runs) select.append(el("option", { value: r.id }, r.name));
  select.onchange = () => { state.run = Number(select.value); state.picked = null; draw(); };
  for (const b of document.querySelectorAll("nav button")) b.onclick = () => showView(b.dataset.view);
  document.getElementById("filter").oninput = (e) => { state.filter = e.target.value; drawTable(); };
  await tick();
}

start();
