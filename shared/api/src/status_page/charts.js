// Charts over time from the hourly counters (GET …/activity): records written per hour each
// way, errors per hour, API requests per hour against each app's limit, and the initial sync's
// progress. Plain SVG; each series has its own line style and marker besides its colour, each
// chart a one-sentence summary and its numbers as a table.
const CHART_HOURS = 48;
const W = 420, H = 170, PAD_L = 44, PAD_R = 8, PAD_T = 10, PAD_B = 24;

/** A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten, at least `floor`. */
function niceMax(value, floor) {
  const v = Math.max(value, floor || 1);
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

const hourLabel = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const dayHourLabel = (ms) => new Date(ms).toLocaleString([], { weekday: "short", hour: "2-digit", minute: "2-digit" });

/** One chart: `series` = [{key, name, values, style}] over `hours` (epoch ms), `format` for
 * axis and table values. */
function lineChart(spec) {
  const { key, title, summary, hours, series, yMax, format } = spec;
  const x = (i) => PAD_L + (hours.length <= 1 ? 0 : (i * (W - PAD_L - PAD_R)) / (hours.length - 1));
  const y = (v) => PAD_T + (H - PAD_T - PAD_B) * (1 - Math.min(v, yMax) / yMax);
  const titleId = nextId("chart-title"), descId = nextId("chart-desc");
  const grid = [0, 0.5, 1].map((f) => el("g", { class: "grid" },
    el("line", { x1: PAD_L, x2: W - PAD_R, y1: y(f * yMax), y2: y(f * yMax) }),
    el("text", { x: PAD_L - 6, y: y(f * yMax) + 4, "text-anchor": "end" }, format(f * yMax))));
  const ticks = hours.map((h, i) => (i % 24 === 0 || i === hours.length - 1)
    ? el("text", { class: "tick", x: x(i), y: H - 8, "text-anchor": i === 0 ? "start" : i === hours.length - 1 ? "end" : "middle" }, hours.length > 24 ? dayHourLabel(h) : hourLabel(h))
    : null);
  const lines = series.map((s) => {
    const points = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    const markers = s.values.map((v, i) => (v > 0
      ? (s.style === "b"
        ? el("rect", { x: x(i) - 2.5, y: y(v) - 2.5, width: 5, height: 5 })
        : el("circle", { cx: x(i), cy: y(v), r: 2.5 }))
      : null));
    return el("g", { class: "series series-" + s.style, "data-series": s.key }, el("polyline", { points }), markers);
  });
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": `${titleId} ${descId}`, class: "chart-svg" },
    el("title", {}, title), grid, ticks, lines);
  const legend = el("ul", { class: "legend" }, series.map((s) =>
    el("li", { class: "series-" + s.style }, el("span", { class: "swatch", "aria-hidden": "true" }), s.name)));
  const rows = hours.map((h, i) => el("tr", {}, el("th", { scope: "row" }, dayHourLabel(h)), series.map((s) => el("td", {}, format(s.values[i])))));
  const table = el("details", { class: "chart-table" }, el("summary", {}, t("charts.show_numbers")),
    el("div", { class: "table-wrap" }, el("table", {},
      el("caption", { class: "visually-hidden" }, title),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, t("charts.hour")), series.map((s) => el("th", { scope: "col" }, s.name)))),
      el("tbody", {}, rows.reverse()))));
  return el("figure", { class: "chart", "data-chart": key },
    el("figcaption", {}, el("strong", { id: titleId }, title), el("span", { id: descId, class: "chart-summary" }, summary)),
    svg, legend, table);
}

const sum = (values) => values.reduce((a, b) => a + b, 0);
const peak = (values) => values.reduce((a, b) => Math.max(a, b), 0);

/** The charts of one connection. */
function charts(status, activity) {
  const hours = activity.hours.map((h) => h.hour_ms);
  const col = (k) => activity.hours.map((h) => h[k] || 0);
  const whole = (v) => fmtNumber(Number.isInteger(v) ? v : Math.round(v * 10) / 10);
  const written = lineChart({
    key: "written", title: t("charts.written.title"), hours, format: whole,
    summary: t("charts.written.summary", { hubspot: sum(col("written_hubspot")), mailerlite: sum(col("written_mailerlite")), hours: hours.length }),
    yMax: niceMax(peak(col("written_hubspot").concat(col("written_mailerlite"))), 5),
    series: [
      { key: "hubspot", name: t("charts.written.hubspot"), values: col("written_hubspot"), style: "a" },
      { key: "mailerlite", name: t("charts.written.mailerlite"), values: col("written_mailerlite"), style: "b" },
    ],
  });
  const errors = lineChart({
    key: "errors", title: t("charts.errors.title"), hours, format: whole,
    summary: t("charts.errors.summary", { errors: sum(col("errors")), failed: sum(col("failed_messages")), hours: hours.length }),
    yMax: niceMax(peak(col("errors").concat(col("failed_messages"))), 5),
    series: [
      { key: "errors", name: t("charts.errors.contacts"), values: col("errors"), style: "a" },
      { key: "failed", name: t("charts.errors.failed"), values: col("failed_messages"), style: "b" },
    ],
  });
  const limits = activity.limits;
  const pct = (k, limit) => col(k).map((v) => (limit ? (100 * v) / limit : 0));
  const hsPct = pct("requests_hubspot", limits.hubspot_per_hour), mlPct = pct("requests_mailerlite", limits.mailerlite_per_hour);
  const percent = (v) => (v === 0 ? "0%" : v < 0.1 ? "<0.1%" : v >= 10 ? Math.round(v) + "%" : v.toFixed(1) + "%");
  const requests = lineChart({
    key: "requests", title: t("charts.requests.title"), hours, format: percent,
    summary: t("charts.requests.summary", {
      hubspot_peak: peak(col("requests_hubspot")), hubspot_limit: limits.hubspot_per_hour, hubspot_pct: percent(peak(hsPct)),
      mailerlite_peak: peak(col("requests_mailerlite")), mailerlite_limit: limits.mailerlite_per_hour, mailerlite_pct: percent(peak(mlPct)),
    }),
    yMax: Math.min(100, niceMax(peak(hsPct.concat(mlPct)) * 1.2, 5)),
    series: [
      { key: "hubspot", name: t("charts.requests.hubspot", { limit: limits.hubspot_per_hour }), values: hsPct, style: "a" },
      { key: "mailerlite", name: t("charts.requests.mailerlite", { limit: limits.mailerlite_per_hour }), values: mlPct, style: "b" },
    ],
  });
  const figures = [written, errors, requests];
  const initial = col("initial_records");
  if (status.lifecycle === "initial_sync" || sum(initial) > 0) {
    let total = 0;
    const cumulative = initial.map((v) => (total += v));
    const goal = status.initial_sync.total || total;
    figures.push(lineChart({
      key: "initial", title: t("charts.initial.title"), hours, format: whole,
      summary: status.initial_sync.total
        ? t("charts.initial.summary_total", { done: status.initial_sync.done, total: status.initial_sync.total })
        : t("charts.initial.summary", { done: status.initial_sync.done }),
      yMax: niceMax(Math.max(goal, peak(cumulative)), 5),
      series: [{ key: "initial", name: t("charts.initial.series"), values: cumulative, style: "a" }],
    }));
  }
  return el("section", { class: "charts", "aria-label": t("charts.region", { hours: hours.length }) },
    el("h3", {}, t("charts.heading", { hours: hours.length })), el("div", { class: "chart-grid" }, figures));
}
