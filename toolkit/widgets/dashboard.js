// The run dashboard: progress, spend, a leaderboard and the last failures. All text nodes.

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function usd(v) {
  if (v === null || v === undefined) return "–";
  if (v === Infinity || v === "inf") return "∞";
  return v < 0.01 ? "$" + Number(v).toFixed(6) : "$" + Number(v).toFixed(4);
}

const LIVE_STATES = ["starting", "running"];

// dashboard.py progress_line says the same. A run that ended has no ETA: it says how it ended.
function progressLine(s) {
  const total = s.total || 0, done = s.done || 0, cancelled = s.cancelled || 0;
  const skipped = s.skipped || 0;
  let spend = `spend ${usd(s.spend_usd)}`;
  if (s.budget_usd) spend += ` of ${usd(s.budget_usd)}`;
  let parts;
  if (LIVE_STATES.includes(s.state)) {
    const eta = s.eta_s === null || s.eta_s === undefined ? "–" : Math.ceil(s.eta_s) + "s";
    parts = [`${done} / ${total} calls`, `${s.in_flight || 0} in flight`, `ETA ${eta}`];
    if (s.throttled) parts.push(String(s.throttled));
  } else {
    parts = [s.state || "finished", `${done - cancelled - skipped} of ${total} planned calls done`];
    if (cancelled) parts.push(`${cancelled} cancelled`);
    if (total > done) parts.push(`${total - done} not started`);
  }
  if (skipped) parts.push(`${skipped} skipped (budget)`);
  return [...parts, spend].join(" · ");
}

function render({ model, el: root }) {
  root.classList.add("sb-dash");
  function draw() {
    const s = model.get("state") || {};
    root.replaceChildren();
    const total = s.total || 0, done = s.done || 0;
    const bar = el("div", "sb-bar");
    const fill = el("div", "sb-fill");
    fill.style.width = total ? (100 * done / total).toFixed(1) + "%" : "0%";
    bar.append(fill);
    const line = el("div", "sb-line", progressLine(s));
    root.dataset.state = s.state || "";
    root.append(line, bar);
    if (s.budget_usd) {
      const spend = el("div", "sb-bar sb-spend");
      const f2 = el("div", "sb-fill");
      f2.style.width = Math.min(100, 100 * (s.spend_usd || 0) / s.budget_usd).toFixed(1) + "%";
      spend.append(f2);
      root.append(spend);
    }
    const table = el("table", "sb-board");
    const head = el("tr");
    for (const h of ["model", "calls", "passed", "success", "cost per success", "p50 latency", "errors"]) {
      head.append(el("th", null, h));
    }
    table.append(head);
    for (const r of s.leaderboard || []) {
      const row = el("tr");
      row.append(el("td", null, r.model), el("td", null, String(r.calls)),
        el("td", null, String(r.passed)), el("td", null, (100 * r.success_rate).toFixed(0) + "%"),
        el("td", null, usd(r.cost_per_success)),
        el("td", null, r.p50_latency_s === null ? "–" : r.p50_latency_s.toFixed(2) + "s"),
        el("td", null, String(r.errors)));
      table.append(row);
    }
    root.append(table);
    const failures = s.failures || [];
    if (failures.length) {
      const list = el("div", "sb-failures");
      list.append(el("div", "sb-fail-title", "last failures"));
      for (const f of failures) {
        list.append(el("div", "sb-fail", `${f.model} · ${f.task_id} · ${f.error_kind}: ${f.message}`));
      }
      root.append(list);
    }
  }
  draw();
  model.on("change:state", draw);
}

export default { render };
