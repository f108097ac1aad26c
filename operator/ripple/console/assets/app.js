// The flow page: a graph of brokers → triggers → subscribers with live counts, the newest events, an event's
// history, and the dead letters with their redrive. Everything comes from ./api/ (same origin, no CDN).
import { html, render, useState, useEffect, useRef } from "./vendor/htm-preact.module.js";

const NODE_W = 230, NODE_H = 66, GAP = 16, COL_X = [20, 320, 620], TOP = 34;
const MAX_EVENTS = 50;

function rateOf(now, before, key) {
  if (!before || !now) return null;
  const seconds = (now.at - before.at) / 1000;
  if (seconds <= 0) return null;
  const a = now.counts[key], b = before.counts[key];
  return a === undefined || b === undefined ? null : Math.max(0, (a - b) / seconds);
}

function fmtRate(value) {
  return value === null ? "–" : value >= 10 ? value.toFixed(0) : value.toFixed(1);
}

// The graph's nodes and edges, laid out in three columns, from one snapshot.
function layout(snapshot) {
  const brokers = snapshot.brokers.map((b) => ({ key: `Broker ${b.id}`, kind: "Broker", label: b.id, data: b }));
  const triggers = snapshot.triggers.map((t) => ({ key: `Trigger ${t.id}`, kind: "Trigger", label: t.id, data: t }));
  const targets = new Map();
  const functions = new Map(snapshot.functions.map((f) => [`Function ${f.id}`, f]));
  const flows = new Map(snapshot.flows.map((f) => [f.id, f]));
  const target = (name) => {
    if (!targets.has(name)) {
      const kind = name.startsWith("Function ") ? "Function" : name.startsWith("Sequence ") ? "Sequence"
        : name.startsWith("Parallel ") ? "Parallel" : "URI";
      targets.set(name, { key: name, kind, label: kind === "URI" ? name : name.slice(kind.length + 1),
        data: functions.get(name) || flows.get(name) || {} });
    }
    return targets.get(name);
  };
  const edges = [];
  for (const t of triggers) {
    edges.push({ from: `Broker ${t.data.broker}`, to: t.key, kind: "in" });
    edges.push({ from: t.key, to: target(t.data.subscriber).key, kind: "out" });
    if (t.data.deadLetterSink) edges.push({ from: t.key, to: target(t.data.deadLetterSink).key, kind: "dead" });
  }
  for (const key of functions.keys()) target(key);
  const columns = [brokers, triggers, [...targets.values()]];
  columns.forEach((nodes, c) => nodes.forEach((n, i) => { n.x = COL_X[c]; n.y = TOP + i * (NODE_H + GAP); }));
  const all = new Map(columns.flat().map((n) => [n.key, n]));
  const height = TOP + Math.max(1, ...columns.map((c) => c.length)) * (NODE_H + GAP);
  return { nodes: [...all.values()], edges: edges.filter((e) => all.has(e.from) && all.has(e.to)), all, height };
}

function NodeText({ node, rates }) {
  const d = node.data;
  const lines = [];
  if (node.kind === "Broker") {
    lines.push([`${d.stored ?? "–"} stored`, "muted"]);
    lines.push([`${d.deadLetters ?? 0} dead letters`, d.deadLetters ? "bad" : "muted"]);
  } else if (node.kind === "Trigger") {
    lines.push([`${fmtRate(rates[node.key] ?? null)} ev/s · ${d.filter}`, "muted"]);
    lines.push([`pending ${d.pending ?? "–"} · in flight ${d.inFlight ?? 0} · delivered ${d.delivered ?? 0}`,
      "muted", "delivered"]);
    lines.push([`retried ${d.retried ?? 0} · dead-lettered ${d.deadLettered ?? 0}`,
      d.deadLettered ? "bad" : "muted"]);
  } else if (node.kind === "Function") {
    lines.push([`replicas ${d.ready ?? 0}/${d.desired ?? 0} · demand ${d.demand ?? 0}`, "muted"]);
    const last = d.lastColdStartSeconds == null ? "" : ` (last ${Math.round(d.lastColdStartSeconds * 1000)} ms)`;
    lines.push([`cold starts ${d.coldStarts ?? 0}${last}`, "muted"]);
  } else if (node.kind === "Sequence" || node.kind === "Parallel") {
    const hops = d.hops || [];
    const sum = (k) => hops.reduce((n, h) => n + (h[k] || 0), 0);
    lines.push([`${hops.length} hops · delivered ${sum("delivered")}`, "muted"]);
    lines.push([`retried ${sum("retried")} · dead-lettered ${sum("deadLettered")}`, "muted"]);
  }
  return html`${lines.map(([text, cls, count], i) => html`
    <text x=${node.x + 10} y=${node.y + 34 + i * 14} class=${cls} data-count=${count || null}>${text}</text>`)}`;
}

function Graph({ snapshot, rates }) {
  const { nodes, edges, all, height } = layout(snapshot);
  const path = (e) => {
    const a = all.get(e.from), b = all.get(e.to);
    const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2, mid = (x1 + x2) / 2;
    return `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`;
  };
  return html`<svg width=${COL_X[2] + NODE_W + 20} height=${height} role="img" aria-label="event flow">
    ${["brokers", "triggers", "subscribers"].map((t, i) => html`<text class="column" x=${COL_X[i]} y="20">${t}</text>`)}
    ${edges.map((e) => html`<path class=${`edge ${e.kind === "dead" ? "dead" : (rates[e.kind === "in" ? e.to : e.from] || 0) > 0 ? "hot" : ""}`}
      d=${path(e)} />`)}
    ${nodes.map((n) => html`<g data-node=${n.key}>
      <rect class=${`node ${n.kind}`} x=${n.x} y=${n.y} width=${NODE_W} height=${NODE_H} rx="6" />
      <text class="title" x=${n.x + 10} y=${n.y + 18}>${n.kind === "URI" ? n.label.slice(0, 34) : n.label}</text>
      <${NodeText} node=${n} rates=${rates} />
    </g>`)}
  </svg>`;
}

function Records({ records }) {
  if (!records.length) return html`<p class="empty">no delivery recorded</p>`;
  return html`<table class="record"><thead><tr><th>time</th><th>trigger</th><th>try</th><th>status</th>
    <th>outcome</th></tr></thead><tbody>
    ${records.map((r) => html`<tr>
      <td>${(r.time || "").slice(11, 23)}</td><td title=${r.trigger}>${r.flow ? `${r.flow} ${r.step}` : r.trigger}</td>
      <td>${r.attempt}</td><td>${r.status || "error"}</td>
      <td class=${`outcome-${(r.outcome || "").split(",")[0].replace(/[^a-z-]/g, "")}`}
        title=${r.error || ""}>${r.outcome}${r.reply ? ` → ${r.reply.id}` : ""}${r.error ? ` (${r.error})` : ""}</td>
    </tr>`)}</tbody></table>`;
}

function History({ history, depth = 0 }) {
  const e = history.event;
  return html`<div class=${depth ? "reply" : ""} data-history=${history.id}>
    <p><b>${history.id}</b> ${e ? html`· ${e.type} · ${e.source}` : html`<span class="empty">(no longer stored)</span>`}
      ${e && e.traceparent ? html` · trace <code>${e.traceparent.slice(3, 35)}</code>` : ""}</p>
    <${Records} records=${history.records} />
    ${history.replies.map((r) => html`<${History} history=${r} depth=${depth + 1} />`)}
  </div>`;
}

function App() {
  const [snapshot, setSnapshot] = useState(null);
  const [rates, setRates] = useState({});
  const [events, setEvents] = useState([]);
  const [live, setLive] = useState(false);
  const [letters, setLetters] = useState([]);
  const [history, setHistory] = useState(null);
  const [message, setMessage] = useState("");
  const previous = useRef(null);

  const loadLetters = async () => {
    const answer = await fetch("api/dlq");
    if (answer.ok) setLetters((await answer.json()).deadLetters);
  };

  useEffect(() => {
    const stream = new EventSource("api/stream");
    stream.onopen = () => setLive(true);
    stream.onerror = () => setLive(false);
    stream.addEventListener("snapshot", (m) => {
      const snap = JSON.parse(m.data);
      const counts = {};
      for (const t of snap.triggers) counts[`Trigger ${t.id}`] = (t.delivered || 0) + (t.deadLettered || 0);
      const now = { at: Date.now(), counts };
      const before = previous.current;
      if (!before || now.at - before.at >= 900) {
        const next = {};
        for (const key of Object.keys(counts)) next[key] = rateOf({ at: now.at, counts: { [key]: counts[key] } },
          before && { at: before.at, counts: { [key]: before.counts[key] } }, key);
        setRates(next);
        previous.current = now;
      }
      setSnapshot(snap);
    });
    stream.addEventListener("events", (m) => {
      const fresh = JSON.parse(m.data);
      setEvents((old) => [...fresh.reverse(), ...old].slice(0, MAX_EVENTS));
    });
    loadLetters();
    const timer = setInterval(loadLetters, 2000);
    return () => { stream.close(); clearInterval(timer); };
  }, []);

  const show = async (id) => {
    const answer = await fetch(`api/events/${encodeURIComponent(id)}`);
    setHistory(answer.ok ? await answer.json() : { id, event: null, records: [], replies: [] });
  };

  const redriveLetter = async (letter) => {
    const answer = await fetch("api/dlq/redrive", { method: "POST", headers: { "Content-Type": "application/json" },
      // Back to the trigger that failed it, not to every trigger of the broker.
      body: JSON.stringify({ broker: letter.broker, sequence: letter.sequence,
        trigger: letter.trigger ? letter.trigger.split("/").pop() : undefined }) });
    const body = await answer.json();
    setMessage(answer.ok ? `redrove ${body.id} (dead letter ${letter.sequence})` : `redrive failed: ${body.error}`);
    await loadLetters();
  };

  if (!snapshot) return html`<p class="loading">Connecting to the flow…</p>`;
  const delivered = snapshot.triggers.reduce((n, t) => n + (t.delivered || 0), 0);
  return html`
    <header>
      <h1>Ripple · flow</h1>
      <span class="live"><span class=${`dot ${live ? "on" : ""}`}></span>${live ? "live" : "reconnecting"}</span>
      <span class="totals" data-total="delivered">${`${snapshot.triggers.length} triggers · ${delivered} delivered · ${letters.length} dead letters`}</span>
    </header>
    <main>
      <section class="graph"><${Graph} snapshot=${snapshot} rates=${rates} /></section>
      <section class="side">
        <div class="panel" data-panel="events">
          <h2>Recent events <span class="count">(${events.length})</span></h2>
          ${events.length ? html`<table><thead><tr><th>time</th><th>type</th><th>id</th></tr></thead><tbody>
            ${events.map((e) => html`<tr><td>${(e.time || "").slice(11, 23)}</td><td title=${e.broker}>${e.type}</td>
              <td class="id"><a data-event=${e.id} onClick=${() => show(e.id)}>${e.id}</a></td></tr>`)}
            </tbody></table>` : html`<p class="empty">no event since the page opened</p>`}
        </div>
        <div class="panel" data-panel="dlq">
          <h2>Dead letters <span class="count">(${letters.length})</span></h2>
          ${message ? html`<p data-message>${message}</p>` : ""}
          ${letters.length ? html`<table><thead><tr><th>trigger</th><th>id</th><th>status</th><th></th></tr></thead>
            <tbody>${letters.map((l) => html`<tr data-letter=${l.sequence}>
              <td title=${l.reason || ""}>${l.trigger}</td>
              <td class="id"><a onClick=${() => show(l.id)}>${l.id}</a></td><td>${l.status || "error"}</td>
              <td><button data-redrive=${l.sequence} onClick=${() => redriveLetter(l)}>Redrive</button></td>
            </tr>`)}</tbody></table>` : html`<p class="empty">none</p>`}
        </div>
      </section>
      ${history ? html`<section class="panel history" data-panel="history">
        <h2>Event history <button onClick=${() => setHistory(null)}>close</button></h2>
        <${History} history=${history} />
      </section>` : ""}
    </main>`;
}

render(html`<${App} />`, document.getElementById("app"));
