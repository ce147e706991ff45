// Live panels: one per model. The kernel sends text *deltas* (custom messages, coalesced);
// model output is only ever inserted as text nodes, never as HTML.

function fmt(value, digits, unit) {
  return value === null || value === undefined ? "–" : value.toFixed(digits) + unit;
}

function usd(value) {
  if (value === null || value === undefined) return "–";
  return value < 0.01 ? "$" + value.toFixed(6) : "$" + value.toFixed(4);
}

function footerText(f) {
  const parts = [f.status || "waiting"];
  parts.push("TTFT " + fmt(f.ttft_s, 2, "s"));
  parts.push(fmt(f.tokens_per_s, 0, " tok/s"));
  parts.push((f.output_tokens ?? 0) + " tokens");
  parts.push(usd(f.cost_usd));
  if ((f.attempts ?? 1) > 1) parts.push("attempts " + f.attempts);
  return parts.join(" · ");
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
      body.append(text);

      const foot = document.createElement("div");
      foot.className = "sb-foot";
      const stats = document.createElement("span");
      stats.className = "sb-stats";
      const badge = document.createElement("span");
      badge.className = "sb-badge";
      foot.append(stats, badge);

      box.append(head, reasoning, body, foot);
      el.append(box);
      views.push({ body, text, reasoning, reasoningText, stats, badge, box });
      const saved = model.get("reasonings")[i];
      if (saved) { reasoningText.data = saved; reasoning.hidden = false; }
      showFooter(i, (model.get("footers") || [])[i] || {});
    });
  }

  function showFooter(i, f) {
    const v = views[i];
    if (!v) return;
    v.stats.textContent = footerText(f);
    v.badge.textContent = f.badge || "";
    v.box.dataset.state = f.state || "waiting";
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
    if (views[i] && views[i].text.data !== s) views[i].text.data = s;
  }));
  model.on("change:reasonings", () => model.get("reasonings").forEach((s, i) => {
    if (views[i] && s) { views[i].reasoningText.data = s; views[i].reasoning.hidden = false; }
  }));
  model.on("change:footers", () => model.get("footers").forEach((f, i) => showFooter(i, f)));
  return () => model.off("msg:custom", onMessage);
}

export default { render };
