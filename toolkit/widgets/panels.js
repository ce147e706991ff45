// Live panels: one per model. The kernel sends text *deltas* (custom messages, coalesced);
// model output is only ever inserted as text nodes, never as HTML.

function fmt(value, digits, unit) {
  return value === null || value === undefined ? "–" : value.toFixed(digits) + unit;
}

function usd(value) {
  if (value === null || value === undefined) return "–";
  return value < 0.01 ? "$" + value.toFixed(6) : "$" + value.toFixed(4);
}

const known = (value) => value !== null && value !== undefined;

// The footer's items, status first, unknown values left out (panels.py footer_parts).
function footerParts(f) {
  const parts = [f.status || "waiting"];
  if (known(f.ttft_s)) parts.push("TTFT " + fmt(f.ttft_s, 2, "s"));
  if (known(f.tokens_per_s)) parts.push(fmt(f.tokens_per_s, 0, " tok/s"));
  const tokens = f.output_tokens || 0;
  if (tokens || f.state !== "error") parts.push(tokens + " tok");
  if (known(f.cost_usd)) parts.push(usd(f.cost_usd));
  if ((f.attempts || 1) > 1) parts.push(f.attempts + " attempts");
  if (f.finish) parts.push("finish " + f.finish);
  return parts;
}

function render({ model, el }) {
  el.classList.add("sb-panels");
  const views = [];

  function build() {
    el.replaceChildren();
    views.length = 0;
    model.get("panels").forEach((panel, i) => {
      const box = document.createElement("div");
      box.className = "sb-panel";
      const head = document.createElement("div");
      head.className = "sb-head";
      const name = document.createElement("span");
      name.className = "sb-name";
      name.textContent = panel.name;
      const provider = document.createElement("span");
      provider.className = "sb-provider";
      provider.textContent = panel.provider || "";
      head.append(name, provider);

      const reasoning = document.createElement("details");
      reasoning.className = "sb-reasoning";
      reasoning.hidden = true;
      const summary = document.createElement("summary");
      summary.textContent = "reasoning";
      const reasoningText = document.createTextNode("");
      const reasoningPre = document.createElement("pre");
      reasoningPre.append(reasoningText);
      reasoning.append(summary, reasoningPre);

      const body = document.createElement("pre");
      body.className = "sb-text";
      const text = document.createTextNode(model.get("texts")[i] || "");
      // why a call that answered nothing failed, shown whole where the answer would be
      const note = document.createElement("span");
      note.className = "sb-note";
      body.append(text, note);

      const verdict = document.createElement("div");
      verdict.className = "sb-verdict";
      verdict.hidden = true;

      const foot = document.createElement("div");
      foot.className = "sb-foot";

      box.append(head, reasoning, body, verdict, foot);
      el.append(box);
      views.push({ body, text, note, reasoning, reasoningText, verdict, foot, box, footer: {} });
      const saved = model.get("reasonings")[i];
      if (saved) { reasoningText.data = saved; reasoning.hidden = false; }
      showFooter(i, (model.get("footers") || [])[i] || {});
    });
    // even rows at any width, in CSS alone (panels.py grid_columns); the static HTML that
    // replaces the widget at the end uses the same value
    el.style.gridTemplateColumns = model.get("columns") || "";
  }

  function showVerdict(v) {
    const f = v.footer;
    const message = f.badge || "";
    // nothing answered: the body says why; otherwise the verdict gets its own wrapped line
    const inBody = Boolean(message) && !v.text.data && f.state === "error";
    v.note.textContent = inBody ? message : "";
    v.verdict.textContent = inBody ? "" : message;
    v.verdict.title = inBody ? "" : message;
    v.verdict.hidden = inBody || !message;
  }

  function showFooter(i, f) {
    const v = views[i];
    if (!v) return;
    v.footer = f;
    const parts = footerParts(f);
    const items = parts.map((part, k) => {
      const item = document.createElement("span");
      item.className = k === 0 ? "sb-status" : "sb-stat";
      item.textContent = part;
      return item;
    });
    v.foot.replaceChildren(...items);
    v.box.dataset.state = f.state || "waiting";
    if (f.outcome) v.box.dataset.outcome = f.outcome;
    else delete v.box.dataset.outcome;
    showVerdict(v);
  }

  function follow(v) {
    // auto-scroll only when the reader is already at the bottom
    const atEnd = v.body.scrollHeight - v.body.scrollTop - v.body.clientHeight < 24;
    return () => { if (atEnd) v.body.scrollTop = v.body.scrollHeight; };
  }

  const onMessage = (msg) => {
    for (const i of msg.r || []) {  // a retry starts the answer again
      if (views[i]) { views[i].text.data = ""; views[i].reasoningText.data = ""; }
    }
    for (const [i, text, reasoning] of msg.d || []) {
      const v = views[i];
      if (!v) continue;
      const scroll = follow(v);
      if (text) v.text.appendData(text);
      if (reasoning) { v.reasoning.hidden = false; v.reasoningText.appendData(reasoning); }
      scroll();
    }
    for (const [i, f] of Object.entries(msg.f || {})) showFooter(Number(i), f);
  };

  build();
  model.on("msg:custom", onMessage);
  model.on("change:panels", build);
  model.on("change:texts", () => model.get("texts").forEach((s, i) => {
    if (views[i] && views[i].text.data !== s) { views[i].text.data = s; showVerdict(views[i]); }
  }));
  model.on("change:reasonings", () => model.get("reasonings").forEach((s, i) => {
    if (views[i] && s) { views[i].reasoningText.data = s; views[i].reasoning.hidden = false; }
  }));
  model.on("change:footers", () => model.get("footers").forEach((f, i) => showFooter(i, f)));
  return () => model.off("msg:custom", onMessage);
}

export default { render };
