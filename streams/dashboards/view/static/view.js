// The local view: draws the dashboards' JSON (Grafana's own format) from /api, refreshed every few
// seconds. Stat, time series, bar chart and table panels; anything else says so in its panel.
// Every text from the data is set with textContent (never as HTML); a panel's error shows in it.
"use strict";

(() => {
  const page = new URLSearchParams(location.search);
  const token = page.get("token");
  const COLORS = {
    green: "#73bf69", orange: "#ff9830", red: "#f2495c", blue: "#5794f2", purple: "#b877d9",
    yellow: "#fade2a", text: "#d8d9da",
  };
  const PALETTE = ["#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9", "#705da0",
    "#508642", "#cca300"];
  const AXIS = { axisLine: { lineStyle: { color: "#555" } }, axisLabel: { color: "#aaa", fontSize: 13 },
    splitLine: { lineStyle: { color: "#2c3235" } } };

  // -- small helpers ------------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else node.setAttribute(k, v);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  // "成交额 / GMV" -> <span class=zh>成交额</span> <span class=en>GMV</span>
  function bilingual(title) {
    const at = title.indexOf(" / ");
    if (at < 0) return el("span", { class: "zh", text: title });
    const span = el("span");
    span.append(el("span", { class: "zh", text: title.slice(0, at) }), " ",
      el("span", { class: "en", text: title.slice(at + 3) }));
    return span;
  }

  function withToken(url) {
    if (!token) return url;
    return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
  }

  // Every request gives up after `timeoutMs`: a worker frozen (SIGSTOP) still accepts connections and never
  // answers, and one hung request held every later refresh (the page said "0.8 s old" for as long as the
  // worker was frozen, with no banner: an outside probe).
  async function api(path, query, timeoutMs = 15000) {
    const qs = query ? "?" + new URLSearchParams(query).toString() : "";
    const headers = token ? { Authorization: "Bearer " + token } : {};
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    try {
      let resp;
      try {
        resp = await fetch(path + qs, { headers, cache: "no-store", signal: abort.signal });
      } catch (err) {
        if (abort.signal.aborted) throw new Error(`no answer within ${timeoutMs / 1000} s`);
        throw err;
      }
      let body;
      try { body = await resp.json(); } catch (e) {
        if (abort.signal.aborted) throw new Error(`no answer within ${timeoutMs / 1000} s`);
        body = { error: `HTTP ${resp.status}` };
      }
      if (!resp.ok) throw new Error(body && body.error ? body.error : `HTTP ${resp.status}`);
      return body;
    } finally {
      clearTimeout(timer);
    }
  }

  function showStatus(message, isError) {
    const status = document.getElementById("status");
    status.hidden = !message;
    status.textContent = message || "";
    status.className = "note" + (isError ? " error" : "");
  }

  // -- numbers and units --------------------------------------------------------------------------
  function fixed(value, decimals) {
    return new Intl.NumberFormat("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals })
      .format(value);
  }

  function format(value, unit, decimals) {
    if (value === null || value === undefined || Number.isNaN(value)) return null;
    if (typeof value !== "number") return String(value);
    const d = decimals ?? (Number.isInteger(value) ? 0 : 2);
    switch (unit) {
      case "currencyCNY": return "¥" + fixed(value, decimals ?? 2);
      case "percent": return fixed(value, d) + "%";
      case "s": return fixed(value, d) + " s";
      case "ms": return fixed(value, decimals ?? 0) + " ms";
      default: return fixed(value, d);
    }
  }

  // Grafana's field config: defaults, then overrides by column name.
  function fieldConfig(panel, column) {
    const cfg = Object.assign({}, (panel.fieldConfig && panel.fieldConfig.defaults) || {});
    for (const o of (panel.fieldConfig && panel.fieldConfig.overrides) || []) {
      if (!o.matcher || o.matcher.id !== "byName" || o.matcher.options !== column) continue;
      for (const p of o.properties || []) {
        if (p.id === "displayName") cfg.displayName = p.value;
        else if (p.id === "unit") cfg.unit = p.value;
        else if (p.id === "decimals") cfg.decimals = p.value;
        else if (p.id === "links") cfg.links = p.value;
      }
    }
    return cfg;
  }

  function valueMapping(cfg, value) {
    for (const m of cfg.mappings || []) {
      if (m.type === "value" && m.options && Object.prototype.hasOwnProperty.call(m.options, String(value))) {
        return m.options[String(value)].text;
      }
    }
    return null;
  }

  function thresholdColor(cfg, value) {
    const steps = (cfg.thresholds && cfg.thresholds.steps) || [];
    let color = steps.length ? steps[0].color : "text";
    for (const step of steps) if (step.value !== null && value !== null && value >= step.value) color = step.color;
    return COLORS[color] || color;
  }

  // -- time ---------------------------------------------------------------------------------------
  function timeFormatter(tz, spanMs) {
    const opts = spanMs > 36 * 3600e3
      ? { timeZone: tz, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false }
      : { timeZone: tz, hour: "2-digit", minute: "2-digit", hour12: false };
    const f = new Intl.DateTimeFormat("zh-CN", opts);
    return (ms) => f.format(new Date(ms));
  }

  function rangeLabel(range, tz) {
    const f = new Intl.DateTimeFormat("zh-CN", { timeZone: tz, month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hour12: false });
    return `${f.format(new Date(range.from))} → ${f.format(new Date(range.to))} (${tz})`;
  }

  // -- panels -------------------------------------------------------------------------------------
  function fitText(node, box, share) {
    // As large as the box allows: by its height, then shrunk until the text fits its width.
    let size = Math.min(box.clientHeight * share, 160);
    node.style.fontSize = size + "px";
    const room = box.clientWidth - 16;
    if (node.scrollWidth > room) size = (size * room) / node.scrollWidth;
    node.style.fontSize = Math.max(12, Math.floor(size)) + "px";
  }

  function renderStat(panel, body, result) {
    const opts = panel.options || {};
    const defaults = (panel.fieldConfig && panel.fieldConfig.defaults) || {};
    const row = result.rows[0] || {};
    const columns = result.columns.length ? result.columns : [{ name: "value", type: "number" }];
    const wrap = el("div", { class: "stats" });
    for (const column of columns) {
      const cfg = fieldConfig(panel, column.name);
      const raw = row[column.name] ?? null;
      // Grafana's value mappings: a value shown as a text (the colour stays the thresholds').
      const mapped = raw === null ? null : valueMapping(cfg, raw);
      const text = mapped ?? format(raw, cfg.unit, cfg.decimals) ?? (defaults.noValue || "-");
      const color = raw === null ? COLORS.text : thresholdColor(cfg, raw);
      const cell = el("div", { class: "stat", "data-field": column.name });
      const value = el("div", { class: "stat-value", text, "data-field": column.name });
      if (raw !== null) value.setAttribute("data-raw", String(raw));
      if (opts.colorMode === "background" && raw !== null) {
        cell.style.background = color;
        cell.style.color = "#111217";
      } else {
        value.style.color = color;
      }
      cell.append(value);
      if (opts.textMode === "value_and_name") cell.append(el("div", { class: "stat-name", text: cfg.displayName || column.name }));
      wrap.append(cell);
    }
    body.replaceChildren(wrap);
    for (const cell of wrap.children) {
      fitText(cell.firstChild, cell, opts.textMode === "value_and_name" ? 0.45 : 0.6);
    }
  }

  function chart(state, body) {
    if (!state.chart || state.chart.getDom().parentNode !== body) {
      if (state.chart) state.chart.dispose();
      const dom = el("div", { class: "chart" });
      body.replaceChildren(dom);
      state.chart = echarts.init(dom, null, { renderer: "canvas" });
    }
    return state.chart;
  }

  function renderTimeseries(panel, body, result, state, tz) {
    const defaults = (panel.fieldConfig && panel.fieldConfig.defaults) || {};
    const custom = defaults.custom || {};
    const stacked = custom.stacking && custom.stacking.mode === "normal";
    const unit = defaults.unit;
    const span = result.range.to - result.range.from;
    const series = result.series.map((s) => {
      const labelled = Object.keys(s.labels).length > 0;
      const name = labelled ? s.name : (fieldConfig(panel, s.field).displayName || s.name);
      return {
        // A lone point has no line to show it: draw the points of a short series, as Grafana's "auto".
        name, type: "line", showSymbol: custom.showPoints === "always" || s.points.length <= 3,
        data: s.points, lineStyle: { width: custom.lineWidth || 2 },
        stack: stacked ? "total" : undefined,
        areaStyle: custom.fillOpacity ? { opacity: custom.fillOpacity / 100 } : undefined,
        connectNulls: !!custom.spanNulls,
      };
    });
    chart(state, body).setOption({
      animation: false, color: PALETTE, backgroundColor: "transparent",
      grid: { left: 12, right: 20, top: 14, bottom: 36, containLabel: true },
      tooltip: { trigger: "axis", valueFormatter: (v) => format(v, unit, defaults.decimals) ?? "-" },
      legend: { type: "scroll", bottom: 0, textStyle: { color: "#ccc", fontSize: 13 }, pageTextStyle: { color: "#ccc" } },
      xAxis: Object.assign({ type: "time", min: result.range.from, max: result.range.to }, AXIS,
        { axisLabel: { color: "#aaa", fontSize: 13, formatter: timeFormatter(tz, span), hideOverlap: true } }),
      yAxis: Object.assign({ type: "value" }, AXIS,
        { axisLabel: { color: "#aaa", fontSize: 13, formatter: (v) => format(v, unit, undefined) } }),
      series,
    }, { notMerge: true });
  }

  function renderBars(panel, body, result, state) {
    const opts = panel.options || {};
    const defaults = (panel.fieldConfig && panel.fieldConfig.defaults) || {};
    const xField = opts.xField || (result.columns.find((c) => c.type === "string") || {}).name;
    const categories = result.rows.map((r) => String(r[xField]));
    const horizontal = opts.orientation === "horizontal";
    const series = result.columns.filter((c) => c.name !== xField && c.type === "number").map((c) => {
      const cfg = fieldConfig(panel, c.name);
      return {
        name: cfg.displayName || c.name, type: "bar", data: result.rows.map((r) => r[c.name]),
        barMaxWidth: 80,
        label: { show: opts.showValue !== "never", position: horizontal ? "right" : "top", color: "#ddd",
          fontSize: 14, formatter: (p) => format(p.value, cfg.unit, cfg.decimals) },
      };
    });
    // Every label shown, wrapped to its bar's slot rather than running into the next one.
    const slot = horizontal ? 120 : Math.max(40, (body.clientWidth - 60) / Math.max(1, categories.length) - 8);
    const category = Object.assign({ type: "category", data: categories }, AXIS,
      { axisLabel: { color: "#ccc", fontSize: 13, interval: 0, overflow: "break", width: slot } });
    const value = Object.assign({ type: "value" }, AXIS);
    chart(state, body).setOption({
      animation: false, color: PALETTE, backgroundColor: "transparent",
      grid: { left: 12, right: 28, top: 24, bottom: 30, containLabel: true },
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" },
        valueFormatter: (v) => format(v, defaults.unit, defaults.decimals) ?? "-" },
      legend: { show: series.length > 1, bottom: 0, textStyle: { color: "#ccc" } },
      xAxis: horizontal ? value : category,
      yAxis: horizontal ? Object.assign(category, { inverse: true }) : value,
      series,
    }, { notMerge: true });
  }

  // A data link of the dashboards (e.g. the drill-down), within this site only.
  function linkFor(template, value, board) {
    const url = template
      .replace("${__value.raw:percentencode}", encodeURIComponent(String(value)).replace(/[!'()*]/g,
        (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase()))
      .replace("${__url_time_range}", new URLSearchParams(board.timeQuery()).toString());
    if (!url.startsWith("/") || url.startsWith("//") || url.includes("${")) return null;
    return withToken(url);
  }

  function renderTable(panel, body, result, board) {
    const table = el("table");
    const head = el("tr");
    const cfgs = result.columns.map((c) => fieldConfig(panel, c.name));
    result.columns.forEach((c, i) => head.append(el("th", { text: cfgs[i].displayName || c.name,
      class: c.type === "number" ? "num" : "" })));
    table.append(el("thead", {}, head));
    const tbody = el("tbody");
    for (const row of result.rows) {
      const tr = el("tr");
      result.columns.forEach((c, i) => {
        const cfg = cfgs[i];
        const value = row[c.name];
        const text = c.type === "number" ? format(value, cfg.unit === "short" ? undefined : cfg.unit, cfg.decimals)
          : String(value ?? "");
        const td = el("td", { class: c.type === "number" ? "num" : "", "data-field": c.name });
        const link = cfg.links && cfg.links[0] && linkFor(cfg.links[0].url, value, board);
        if (link) td.append(el("a", { href: link, title: cfg.links[0].title || "", text: text ?? "" }));
        else td.textContent = text ?? "";
        tr.append(td);
      });
      tbody.append(tr);
    }
    table.append(tbody);
    const wrap = el("div", { class: "table" }, table);
    if (result.truncated) wrap.append(el("p", { class: "note", text: "(只显示前面的行 / first rows only)" }));
    body.replaceChildren(wrap);
  }

  // -- one dashboard ------------------------------------------------------------------------------
  class Board {
    constructor(doc) {
      this.doc = doc;
      this.tz = doc.timezone || "Asia/Shanghai";
      this.values = {};
      this.pickers = [];  // each variable's select, its values in the range, and its warning
      this.panels = [];
      this.refreshMs = Math.max(2000, 1000 * parseInt(doc.refresh || "5s", 10) || 5000);
    }

    timeQuery() {
      const q = {};
      for (const key of ["from", "to"]) if (page.get(key)) q[key] = page.get(key);
      return q;
    }

    query() {
      return Object.assign(this.timeQuery(), this.values);
    }

    async setupVariables() {
      const holder = document.getElementById("variables");
      for (const v of (this.doc.templating && this.doc.templating.list) || []) {
        const options = (await api(`/api/variables/${encodeURIComponent(this.doc.uid)}/${encodeURIComponent(v.name)}`,
          this.timeQuery())).values;
        const wanted = page.get("var-" + v.name);
        const current = wanted !== null ? wanted : options[0];
        const select = el("select", { id: "var-" + v.name, "aria-label": v.label || v.name });
        const choices = options.includes(current) || current === undefined ? options : [current, ...options];
        for (const o of choices) select.append(el("option", { value: o, text: o }));
        if (current !== undefined) {
          select.value = current;
          this.values[v.name] = current;
        }
        select.addEventListener("change", () => {
          this.values[v.name] = select.value;
          const url = new URL(location.href);
          url.searchParams.set("var-" + v.name, select.value);
          history.replaceState(null, "", url);
          this.refresh();
        });
        holder.append(el("label", { for: "var-" + v.name, text: v.label || v.name }), select);
        // A value the range does not know (a typo, a campaign with no counts in it) would draw zeros as
        // if it were real: say so beside it, in the bar, for as long as it is chosen and unknown (the
        // values are read again while it is shown, and every minute: a campaign's first minute settles).
        const picker = { name: v.name, select, options, loadedMs: Date.now(),
          warning: el("span", { class: "var-warning", id: "var-warning-" + v.name, role: "status" }) };
        select.addEventListener("change", () => this.warn(picker));
        this.warn(picker);
        this.pickers.push(picker);
        holder.append(picker.warning);
      }
    }

    warn(picker) {
      const value = picker.select.value;
      const unknown = value !== "" && !picker.options.includes(value);
      picker.warning.hidden = !unknown;
      picker.warning.textContent = unknown ? `⚠ ${value}: 此时间范围内没有数据 / no counts in this range` : "";
    }

    // The pickers' values, read again when one warns or a minute has passed; the chosen value is kept.
    async refreshPickers() {
      for (const picker of this.pickers) {
        if (picker.warning.hidden && Date.now() - picker.loadedMs < 60_000) continue;
        try {
          const path = `/api/variables/${encodeURIComponent(this.doc.uid)}/${encodeURIComponent(picker.name)}`;
          const options = (await api(path, this.timeQuery())).values;
          picker.loadedMs = Date.now();
          const current = picker.select.value;
          const choices = options.includes(current) || !current ? options : [current, ...options];
          const shown = Array.from(picker.select.options, (o) => o.value);
          if (choices.join("\u0000") !== shown.join("\u0000")) {
            picker.select.replaceChildren(...choices.map((o) => el("option", { value: o, text: o })));
            picker.select.value = current || choices[0] || "";
            if (!current && choices.length) this.values[picker.name] = choices[0];  // the first values came
          }
          picker.options = options;
          this.warn(picker);
        } catch (err) {
          // the panels say what is wrong with the store; the picker keeps what it had
        }
      }
    }

    layout() {
      const grid = document.getElementById("grid");
      const rows = Math.max(1, ...this.doc.panels.map((p) => p.gridPos.y + p.gridPos.h));
      const fit = () => {
        const header = document.querySelector(".bar").offsetHeight;
        const height = (window.innerHeight - header - 12 - 6 * (rows - 1)) / rows;
        grid.style.setProperty("--row", Math.max(22, Math.floor(height)) + "px");
        for (const p of this.panels) if (p.chart) p.chart.resize();
      };
      for (const panel of this.doc.panels) {
        const g = panel.gridPos;
        const body = el("div", { class: "body" });
        const title = el("h2", { title: panel.description || "" }, bilingual(panel.title));
        const node = el("section", { class: "panel", "data-panel-id": String(panel.id), "data-type": panel.type,
          "data-state": "loading" }, title, body);
        node.style.gridColumn = `${g.x + 1} / span ${g.w}`;
        node.style.gridRow = `${g.y + 1} / span ${g.h}`;
        grid.append(node);
        this.panels.push({ panel, node, body, chart: null });
      }
      fit();
      window.addEventListener("resize", fit);
    }

    // One panel from its answer in the board's read (or the error it got).
    drawPanel(state, result) {
      const { panel, node, body } = state;
      try {
        if (result.error) throw new Error(result.error);
        if (!["stat", "timeseries", "barchart", "table"].includes(panel.type)) {
          throw new Error(`panel type ${panel.type} is not drawn by this view`);
        }
        this.lastRange = result.range;
        if (panel.type !== "stat" && result.rows.length === 0) {
          if (state.chart) { state.chart.dispose(); state.chart = null; }
          body.replaceChildren(el("div", { class: "no-data", text: "无数据 / No data" }));
        } else if (panel.type === "stat") renderStat(panel, body, result);
        else if (panel.type === "timeseries") renderTimeseries(panel, body, result, state, this.tz);
        else if (panel.type === "barchart") renderBars(panel, body, result, state);
        else renderTable(panel, body, result, this);
        node.dataset.state = "ok";
        node.removeAttribute("data-error");
      } catch (err) {
        if (state.chart) { state.chart.dispose(); state.chart = null; }
        body.replaceChildren(el("div", { class: "panel-error", text: "⚠ " + err.message }));
        node.dataset.state = "error";
        node.dataset.error = err.message;
      }
    }

    // Every panel from one read of the store (/api/board): the tiles, tables and series agree.
    async refreshPanels() {
      let read;
      try {
        read = await api(`/api/board/${encodeURIComponent(this.doc.uid)}`, this.query());
      } catch (err) {
        for (const state of this.panels) this.drawPanel(state, { error: err.message });
        return null;
      }
      for (const state of this.panels) {
        this.drawPanel(state, read.panels[String(state.panel.id)] || { error: "no answer for this panel" });
      }
      this.settledMs = read.settled_ms || 0;
      return read.as_of_ms;
    }

    // The banner: what stops or delays the numbers, from /api/status (streams/worker/app.py: status).
    async refreshStatus() {
      const banner = document.getElementById("banner");
      let problems;
      try {
        const status = await api("/api/status", null, 5000);
        problems = status.problems;
        this.lastWriteMs = status.last_write_ms || 0;
        this.showAlerts(status.alerts || []);
      } catch (err) {
        problems = [{ kind: "worker_unreachable", message: "看板连不上 worker / the worker does not answer",
          detail: err.message, since_ms: 0 }];
      }
      const names = { store_unreachable: "存储不可达 / Store unreachable", writes_failing: "写入失败 / Writes failing",
        stalled: "管道停滞 / Pipeline stalled", behind: "管道延迟 / Pipeline behind", starting: "启动中 / Starting",
        worker_unreachable: "Worker 不可达 / Worker unreachable", broker_unreachable: "Kafka 不可达 / Broker unreachable",
        broker_reset: "Kafka 日志丢失 / Broker lost its log" };
      if (!problems.length) {
        banner.hidden = true;
        banner.removeAttribute("data-kind");
        banner.replaceChildren();
        return;
      }
      const first = problems[0];
      const clock = (ms) => new Intl.DateTimeFormat("zh-CN", { timeZone: this.tz, hour: "2-digit", minute: "2-digit",
        second: "2-digit", hour12: false }).format(new Date(ms));
      const since = first.since_ms ? ` · 自 / since ${clock(first.since_ms)}` : "";
      const more = problems.length > 1 ? ` (+${problems.length - 1})` : "";
      banner.replaceChildren(
        document.createTextNode(`⚠ ${names[first.kind] || first.kind}: ${first.message}${since}${more}`),
        el("span", { class: "detail", text: problems.map((p) => p.detail).filter(Boolean).join(" · ") }),
      );
      banner.dataset.kind = first.kind;
      banner.hidden = false;
    }

    // The alert banner: the drop detector's incidents firing now (streams/alerts/; `promo worker --alerts`).
    showAlerts(alerts) {
      const box = document.getElementById("alerts");
      if (!box) return;
      if (!alerts.length) {
        box.hidden = true;
        box.replaceChildren();
        return;
      }
      const clock = (ms) => new Intl.DateTimeFormat("zh-CN", { timeZone: this.tz, hour: "2-digit", minute: "2-digit",
        second: "2-digit", hour12: false }).format(new Date(ms));
      const metrics = { interactions: "互动量 interactions", shares: "分享 shares", orders: "订单 orders",
        gmv_fen: "GMV", new_users: "新下单用户 new users" };
      // GMV in yuan, as the tiles show it (in fen it read 100x too high beside them: an outside probe)
      const amount = (a, v) => (a.metric === "gmv_fen" ? "¥" + Math.round(v / 100).toLocaleString("en-US")
        : Math.round(v).toLocaleString("en-US"));
      const line = (a) => {
        if (a.kind === "lag") return `⏱ 数据延迟 / pipeline behind ${Math.round(a.observed)} s · 自 / since ${clock(a.since_ms)}`;
        const scope = a.campaign_id === null ? "全部 / total" : a.campaign_id + (a.channel ? " / " + a.channel : "");
        const icon = a.severity === "critical" ? "🔴" : "🟠";
        // A scheduled campaign from which nothing arrived has no expected count (null): it read "−0% (0 vs 0)"
        if (!(a.expected > 0)) return `${icon} ${scope} · 排期已开始，没有任何数据 / nothing has arrived since its start ` +
          `${clock(a.since_ms)}`;
        const drop = Math.round((1 - a.observed / a.expected) * 100);
        return `${icon} ${scope} · ${metrics[a.metric] || a.metric} −${drop}% (${amount(a, a.observed)} vs ` +
          `${amount(a, a.expected)}, ${a.basis}) · 自 / since ${clock(a.since_ms)}`;
      };
      // Who is on it, and whether the robots are silenced for it: the room acts on both (an outside probe:
      // an ack or a silence changed nothing on the screen).
      // With its date when not today: a silence may run up to 7 days (it read "until 14:00" for any of them)
      const day = (d) => new Intl.DateTimeFormat("en-CA", { timeZone: this.tz, year: "numeric", month: "2-digit",
        day: "2-digit" }).format(d);
      const hm = (ms) => {
        const when = new Date(ms);
        const opts = { timeZone: this.tz, hour: "2-digit", minute: "2-digit", hour12: false };
        if (day(when) !== day(new Date())) Object.assign(opts, { month: "2-digit", day: "2-digit" });
        return new Intl.DateTimeFormat("zh-CN", opts).format(when);
      };
      const status = (a) => (a.acked_by ? ` · ✔ 已确认 / acked by ${a.acked_by}` : "") +
        (a.silenced_until_ms ? ` · 🔕 静默至 / silenced until ${hm(a.silenced_until_ms)}` +
          (a.silence_reason ? ` (${a.silence_reason})` : "") : "");
      const shown = alerts.slice(0, 3).map((a) => el("div", { class: "alert", "data-severity": a.severity,
        "data-acked": a.acked_by ? "1" : "", text: line(a) + status(a) }));
      if (alerts.length > 3) shown.push(el("div", { class: "more", text: `+${alerts.length - 3} 条 / more (promo alerts list)` }));
      box.replaceChildren(...shown);
      box.dataset.severity = alerts.some((a) => a.severity === "critical") ? "critical" : "warning";
      box.hidden = false;
    }

    // The banner refreshes on its own loop, never waiting for the panels: a read that hangs (a frozen
    // worker) holds the panels for up to 15 s, and the banner saying so must not wait for it.
    async refreshBanner() {
      if (this.statusBusy) return;
      this.statusBusy = true;
      try {
        await this.refreshStatus();
      } finally {
        this.statusBusy = false;
      }
    }

    async refresh() {
      if (this.busy) return;
      this.busy = true;
      try {
        const [asOf] = await Promise.all([this.refreshPanels(), this.refreshBanner(), this.refreshPickers()]);
        const failed = this.panels.filter((p) => p.node.dataset.state === "error").length;
        const updated = document.getElementById("updated");
        const clock = new Intl.DateTimeFormat("zh-CN", { timeZone: this.tz, hour: "2-digit", minute: "2-digit",
          second: "2-digit", hour12: false }).format(new Date(asOf || Date.now()));
        // "Data as of" the one read every panel came from, and how old the newest write in it was.
        const age = asOf && this.lastWriteMs ? ` · ${Math.max(0, (asOf - this.lastWriteMs) / 1000).toFixed(1)} s old` : "";
        // What the tiles and charts count to: whole minutes up to the settled one (the current minute
        // comes a few seconds after it ends), said, so "data as of" is not read as "counted to".
        const hm = new Intl.DateTimeFormat("zh-CN", { timeZone: this.tz, hour: "2-digit", minute: "2-digit", hour12: false });
        const counted = this.settledMs ? `计至 / counted to ${hm.format(new Date(this.settledMs))} · ` : "";
        updated.textContent = `${counted}数据截至 / data as of ${clock}${age}` + (failed ? ` · ${failed} 个面板出错 / panels failing` : "");
        updated.dataset.settledMs = String(this.settledMs || "");
        updated.classList.toggle("stale", failed > 0);
        if (this.lastRange) document.getElementById("range").textContent = rangeLabel(this.lastRange, this.tz);
        document.body.dataset.refreshed = String((parseInt(document.body.dataset.refreshed || "0", 10)) + 1);
      } finally {
        this.busy = false;
      }
    }

    async start() {
      document.title = this.doc.title;
      document.getElementById("title").replaceChildren(bilingual(this.doc.title));
      this.layout();
      try {
        await this.setupVariables();
      } catch (err) {
        showStatus("⚠ " + err.message, true);
      }
      await this.refresh();
      setInterval(() => this.refresh(), this.refreshMs);
      setInterval(() => this.refreshBanner(), this.refreshMs);
    }
  }

  // -- pages --------------------------------------------------------------------------------------
  async function index() {
    try {
      const boards = await api("/api/dashboards");
      const list = document.getElementById("boards");
      for (const b of boards) {
        const link = el("a", { href: withToken("/d/" + encodeURIComponent(b.uid)) }, bilingual(b.title));
        list.append(el("li", {}, link, el("p", { text: b.description })));
      }
      showStatus("");
    } catch (err) {
      showStatus("⚠ " + err.message, true);
    }
    // The pipeline's banner and the firing alerts here too: this is the page `promo demo` prints (an outside
    // probe: a room that opened it saw no alert at all). The boards' own status loop, without their panels.
    const watch = Object.create(Board.prototype);
    watch.tz = "Asia/Shanghai";
    await watch.refreshBanner();
    setInterval(() => watch.refreshBanner(), 5000);
  }

  async function board() {
    const uid = decodeURIComponent(location.pathname.split("/").pop());
    try {
      const doc = await api("/api/dashboards/" + encodeURIComponent(uid));
      await new Board(doc).start();
    } catch (err) {
      showStatus("⚠ " + err.message, true);
    }
  }

  if (document.body.classList.contains("board")) board();
  else index();
})();
