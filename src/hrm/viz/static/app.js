/* hrm viz: the page. Plain JavaScript and SVG, no libraries, no build step.
 *
 * Two modes: served by `hrm viz` (talks to the JSON API), or exported by `hrm viz --export`
 * (the trace is embedded in the page and nothing is fetched).
 *
 * Rendered values are exposed as data-* attributes (grid cells, chart points, readouts) so that
 * tests can compare what is drawn with the trace.
 */
"use strict";

(function () {
  const SVGNS = "http://www.w3.org/2000/svg";
  const ARC_COLOURS = [
    "#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00",
    "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF", "#870C25",
  ];
  const STATE_COLOURS = { correct: "#15803d", wrong: "#dc2626", given: "#0f172a", unknown: "#1d4ed8" };
  const POLL_MS = 3000;
  const PLAY_MS = 800;

  const S = {
    offline: false,
    info: null,
    kinds: [], // the puzzle kinds' descriptions (kindInfo)
    gen: {}, // Generate menu entry -> {kind, size}
    trace: null,
    ann: null,
    traceId: null,
    seg: 1, // 1-based segment shown
    step: null, // 1-based step of the segment selected in the planner view, or null
    hoverStep: null,
    playing: null,
    tab: "puzzle",
    run: { records: [], gen: -1, since: 0, timer: null, drawnTotal: -1, drawnGen: -2 },
    data: { summary: null, split: null, page: 0, pages: 1, selected: null, loaded: false },
  };

  // ------------------------------------------------------------------------------------------
  // Small helpers
  // ------------------------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else node.setAttribute(k, String(v));
    }
    for (const child of children || []) if (child) node.appendChild(child);
    return node;
  }

  function svg(tag, attrs, parent) {
    const node = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "text") node.textContent = v;
      else node.setAttribute(k, String(v));
    }
    if (parent) parent.appendChild(node);
    return node;
  }

  function title(node, text) {
    svg("title", { text: text }, node);
    return node;
  }

  function fmt(x, digits) {
    if (x === null || x === undefined || Number.isNaN(x)) return "–";
    const d = digits === undefined ? 4 : digits;
    const a = Math.abs(x);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return x.toExponential(2);
    return Number(x.toFixed(d)).toString();
  }

  function setStatus(message, kind) {
    const box = $("status");
    box.textContent = message || "";
    box.className = "status" + (message ? " show " + (kind || "info") : "");
  }

  async function api(path, body) {
    const opts = body === undefined
      ? { headers: { Accept: "application/json" } }
      : { method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify(body) };
    let res;
    try {
      res = await fetch(path, opts);
    } catch (err) {
      throw new Error("the viewer's server cannot be reached (is `hrm viz` still running?)");
    }
    let data = null;
    try {
      data = await res.json();
    } catch (err) {
      data = null;
    }
    if (!res.ok) throw new Error((data && data.error) || res.status + " " + res.statusText);
    return data;
  }

  function sameShape(a, b) {
    if (!a || !b || a.length !== b.length) return false;
    for (let r = 0; r < a.length; r++) if (!b[r] || a[r].length !== b[r].length) return false;
    return true;
  }

  function segColour(seg, n) {
    const t = n <= 1 ? 0 : (seg - 1) / (n - 1);
    return "hsl(" + Math.round(230 - 215 * t) + ", 72%, " + Math.round(42 + 6 * t) + "%)";
  }

  // ------------------------------------------------------------------------------------------
  // Grids
  // ------------------------------------------------------------------------------------------

  /*
   * The puzzle kinds as the server describes them (hrm.tasks.Task.describe: name, title, style,
   * cell_px, boxes, generate, input_hint, json_input), from /api/info or the exported page.
   * Nothing below branches on a kind's name: cells are drawn by the kind's style.
   */
  const FALLBACK_KIND = { style: "colours", cell_px: 26, boxes: null, generate: null };

  function kindInfo(kind) {
    return S.kinds.find((k) => k.name === kind) || FALLBACK_KIND;
  }

  function styleOf(kind) {
    return STYLES[kindInfo(kind).style] || STYLES.colours;
  }

  /*
   * How each style of cell is judged and drawn. state(o, v, input, e): the state of a cell of value
   * v (input: the puzzle's cell there, e: the expected one) in a grid that is not the answer (o.role
   * input or expected) or is; draw(g, v, state, x, y, s); overlay: the low-confidence shading.
   * States: given / correct / wrong / missed / unknown / plain.
   */
  const STYLES = {
    digits: {
      overlay: "#f59e0b",
      state: (o, v, input, e) => {
        if (o.role !== "answer") return v !== 0 && input !== undefined && input !== 0 ? "given" : (o.role === "input" && v !== 0 ? "given" : "plain");
        if (input !== undefined && input !== 0) return v === input ? "given" : "wrong";
        if (o.valid === true) return "correct";
        if (e === undefined) return v === 0 ? "plain" : "unknown";
        return v === e ? "correct" : "wrong";
      },
      draw: (g, v, state, x, y, s) => {
        svg("rect", { x: x, y: y, width: s, height: s, fill: state === "given" ? "#eef2f7" : "#ffffff", stroke: "#cbd5e1", "stroke-width": 1 }, g);
        if (v !== 0) {
          svg("text", {
            x: x + s / 2, y: y + s / 2 + s * 0.17, "text-anchor": "middle", "font-size": Math.round(s * 0.5),
            "font-weight": state === "given" ? 700 : 500, fill: STATE_COLOURS[state] || "#1d4ed8", text: String(v),
          }, g);
        } else if (state === "wrong") {
          svg("text", { x: x + s / 2, y: y + s / 2 + s * 0.15, "text-anchor": "middle", "font-size": Math.round(s * 0.42), fill: STATE_COLOURS.wrong, text: "?" }, g);
        }
      },
    },
    path: {
      overlay: "#f59e0b",
      state: (o, v, input, e) => {
        if (o.role !== "answer") return "plain";
        if (o.valid === true) return v === "o" ? "correct" : "plain";
        if (e === undefined) {
          if (input !== undefined && v !== input && !(input === " " && v === "o")) return "wrong";
          return v === "o" ? "unknown" : "plain";
        }
        if (v === "o" && e === "o") return "correct";
        if (v === "o") return "wrong";
        if (e === "o") return "missed";
        return v === e ? "plain" : "wrong";
      },
      draw: (g, v, state, x, y, s) => {
        const fills = { "#": "#1e293b", " ": "#f8fafc", o: "#f8fafc", S: "#16a34a", G: "#dc2626", "?": "#94a3b8" };
        svg("rect", { x: x, y: y, width: s, height: s, fill: fills[v] || "#94a3b8", stroke: v === "#" ? "#1e293b" : "#e2e8f0", "stroke-width": 0.5 }, g);
        if ((v === "S" || v === "G" || v === "?") && s >= 10) {
          svg("text", { x: x + s / 2, y: y + s / 2 + s * 0.18, "text-anchor": "middle", "font-size": Math.round(s * 0.55), "font-weight": 700, fill: "#ffffff", text: v }, g);
        }
        if (v === "o") {
          const col = state === "wrong" ? STATE_COLOURS.wrong : state === "correct" ? STATE_COLOURS.correct : "#2563eb";
          svg("circle", { cx: x + s / 2, cy: y + s / 2, r: Math.max(1.5, s * 0.3), fill: col }, g);
        } else if (state === "missed") {
          svg("circle", { cx: x + s / 2, cy: y + s / 2, r: Math.max(1.5, s * 0.28), fill: "none", stroke: STATE_COLOURS.wrong, "stroke-width": Math.max(1, s * 0.08), "stroke-dasharray": "2,2" }, g);
        } else if (state === "wrong") {
          const m = s * 0.22;
          svg("path", { d: "M" + (x + m) + "," + (y + m) + " L" + (x + s - m) + "," + (y + s - m) + " M" + (x + s - m) + "," + (y + m) + " L" + (x + m) + "," + (y + s - m), stroke: STATE_COLOURS.wrong, "stroke-width": Math.max(1.2, s * 0.1) }, g);
        }
      },
    },
    colours: {
      overlay: "#ffffff",
      state: (o, v, input, e) => {
        if (o.role !== "answer") return "plain";
        if (!o.expected) return "unknown";
        if (!o.expectedOk) return "wrong";
        return v === e ? "correct" : "wrong";
      },
      draw: (g, v, state, x, y, s) => {
        const colour = typeof v === "number" && v >= 0 && v <= 9 ? ARC_COLOURS[v] : "#ffffff";
        svg("rect", { x: x, y: y, width: s, height: s, fill: colour, stroke: "#3f3f46", "stroke-width": 0.6 }, g);
        if (state === "wrong" && s >= 8) {
          const m = s * 0.3;
          svg("rect", { x: x + m, y: y + m, width: s - 2 * m, height: s - 2 * m, fill: "#ffffff", stroke: STATE_COLOURS.wrong, "stroke-width": Math.max(1, s * 0.09) }, g);
        }
      },
    },
  };

  /* State of one cell of a displayed grid, by the kind's style. */
  function cellState(o, style, r, c) {
    const input = o.input && o.input[r] ? o.input[r][c] : undefined;
    const e = o.expectedOk && o.expected[r] ? o.expected[r][c] : undefined;
    return style.state(o, o.grid[r][c], input, e);
  }

  function cellPx(info, rows, cols, max) {
    const n = Math.max(rows, cols, 1);
    return Math.max(4, Math.min(info.cell_px, Math.floor(max / n)));
  }

  /*
   * Draw a grid into `box`. o: {kind, grid, role: input|answer|expected, input, expected, prev,
   * confidence, valid, max}. Returns the counts of correct / wrong / changed cells.
   */
  function drawGrid(box, o) {
    box.textContent = "";
    const grid = o.grid || [];
    const rows = grid.length;
    const cols = rows ? grid[0].length : 0;
    const counts = { correct: 0, wrong: 0, changed: 0, cells: rows * cols };
    if (!rows || !cols) {
      box.appendChild(el("div", { class: "empty", text: o.emptyText || "(empty grid)", "data-values": "[]" }));
      return counts;
    }
    const info = kindInfo(o.kind);
    const style = styleOf(o.kind);
    o.expectedOk = o.expected ? sameShape(grid, o.expected) : false;
    const s = cellPx(info, rows, cols, o.max || 380);
    const pad = 2;
    const w = cols * s + 2 * pad;
    const h = rows * s + 2 * pad;
    const root = svg("svg", {
      width: w, height: h, viewBox: "0 0 " + w + " " + h, class: "grid grid-" + o.kind,
      "data-kind": o.kind, "data-role": o.role, "data-rows": rows, "data-cols": cols,
      "data-values": JSON.stringify(grid),
    });
    const prevOk = o.prev && sameShape(grid, o.prev);
    const showConf = o.confidence && sameShape(grid, o.confidence);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const v = grid[r][c];
        const state = cellState(o, style, r, c);
        const changed = o.prev ? (!prevOk || o.prev[r][c] !== v) : false;
        const conf = showConf ? o.confidence[r][c] : null;
        if (state === "correct") counts.correct++;
        if (state === "wrong" || state === "missed") counts.wrong++;
        if (changed) counts.changed++;
        const x = pad + c * s;
        const y = pad + r * s;
        const g = svg("g", {
          class: "cell", "data-r": r, "data-c": c, "data-value": v, "data-state": state,
          "data-changed": changed ? 1 : 0, "data-confidence": conf === null ? null : conf,
        }, root);
        style.draw(g, v, state, x, y, s);
        if (conf !== null && conf < 0.999) {
          svg("rect", { x: x, y: y, width: s, height: s, fill: style.overlay, "fill-opacity": ((1 - conf) * 0.6).toFixed(3), "pointer-events": "none" }, g);
        }
        if (changed && s >= 8) {
          const t = Math.max(5, Math.round(s * 0.3));
          svg("path", { d: "M" + (x + s - t) + "," + y + " L" + (x + s) + "," + y + " L" + (x + s) + "," + (y + t) + " Z", fill: "#f97316" }, g);
        }
        let tip = "r" + (r + 1) + "c" + (c + 1) + ": " + JSON.stringify(v) + " (" + state + ")";
        if (conf !== null) tip += ", confidence " + fmt(conf, 3);
        if (changed) tip += ", changed";
        title(g, tip);
      }
    }
    const boxes = info.boxes && rows === cols ? info.boxes[String(rows)] : null;
    if (boxes) {
      const [br, bc] = boxes;
      for (let k = 0; k <= rows; k += br) svg("line", { x1: pad, y1: pad + k * s, x2: pad + cols * s, y2: pad + k * s, stroke: "#0f172a", "stroke-width": 2.2 }, root);
      for (let k = 0; k <= cols; k += bc) svg("line", { x1: pad + k * s, y1: pad, x2: pad + k * s, y2: pad + rows * s, stroke: "#0f172a", "stroke-width": 2.2 }, root);
    } else {
      svg("rect", { x: pad, y: pad, width: cols * s, height: rows * s, fill: "none", stroke: "#334155", "stroke-width": 1.5 }, root);
    }
    root.setAttribute("data-correct", counts.correct);
    root.setAttribute("data-wrong", counts.wrong);
    root.setAttribute("data-changed", counts.changed);
    box.appendChild(root);
    return counts;
  }

  // ------------------------------------------------------------------------------------------
  // The trace views
  // ------------------------------------------------------------------------------------------

  function seg() {
    return S.trace.segments[S.seg - 1];
  }

  function loadTrace(trace, annotations, traceId, solution) {
    stopPlay();
    S.trace = trace;
    S.ann = annotations || { expected: null, expected_source: null, checks: [] };
    S.traceId = traceId || null;
    S.seg = 1;
    S.step = null;
    S.hoverStep = null;
    const n = trace.segments.length;
    const slider = $("seg-slider");
    slider.max = String(n);
    slider.value = "1";
    $("segbar").hidden = !["puzzle", "planner", "trajectories"].includes(S.tab);
    const link = $("trace-link");
    if (traceId && !S.offline) {
      link.href = "/api/trace/" + traceId;
      link.hidden = false;
    }
    document.body.setAttribute("data-trace-id", traceId || "embedded");
    document.body.setAttribute("data-segments", String(n));
    renderSummary(solution);
    renderSegment();
  }

  function renderSummary(solution) {
    const t = S.trace;
    const f = t.final || {};
    const box = $("summary");
    box.textContent = "";
    const verdict = f.valid === true ? "✓ valid" : f.valid === false ? "✗ invalid" : "? unchecked";
    box.appendChild(el("span", { class: f.valid === true ? "ok" : f.valid === false ? "bad" : "", text: verdict }));
    let text = "";
    if (f.valid === false && f.reason) text += " (" + f.reason + ")";
    text += " · " + (t.puzzle && t.puzzle.name ? t.puzzle.name : t.kind);
    box.appendChild(el("span", { text: text }));
    const meta = [
      f.segments + " of at most " + t.model.halt_max_steps + " segments (" + t.halt + " halting)",
      "confidence " + fmt(f.confidence, 3),
      fmt(f.seconds, 3) + " s",
      t.model.name + " H" + t.model.H_cycles + "×L" + t.model.L_cycles,
    ];
    if (S.ann.expected_source) meta.push("expected: " + S.ann.expected_source);
    box.appendChild(el("div", { class: "meta", text: meta.join(" · ") }));
    box.setAttribute("data-valid", String(f.valid));
    box.setAttribute("data-final-segments", String(f.segments));
    if (solution && solution.verdict) box.setAttribute("data-verdict", solution.verdict);
  }

  function renderSegment() {
    if (!S.trace) return;
    const t = S.trace;
    const n = t.segments.length;
    S.seg = Math.min(Math.max(1, S.seg), n);
    const sg = seg();
    $("seg-slider").value = String(S.seg);
    const label = $("seg-label");
    label.textContent = "Segment " + S.seg + " / " + n;
    label.setAttribute("data-segment", String(S.seg));
    const qtext = "q_halt " + fmt(sg.q_halt, 3) + " · q_continue " + fmt(sg.q_continue, 3) +
      (sg.halt_signal ? " · halt signal" : "") + (sg.halted ? " · halted here" : "");
    $("seg-q").textContent = qtext;
    $("seg-q").setAttribute("data-q-halt", String(sg.q_halt));
    $("seg-q").setAttribute("data-q-continue", String(sg.q_continue));
    renderPuzzle();
    if (S.tab === "planner") renderPlanner();
    if (S.tab === "trajectories") renderPca();
  }

  function renderPuzzle() {
    const t = S.trace;
    const sg = seg();
    const prev = S.seg > 1 ? t.segments[S.seg - 2].answer : null;
    const check = (S.ann.checks || [])[S.seg - 1] || { valid: null, reason: null };
    const expected = S.ann.expected;
    drawGrid($("grid-input"), { kind: t.kind, grid: t.puzzle.grid, role: "input", input: t.puzzle.grid });
    const counts = drawGrid($("grid-answer"), {
      kind: t.kind, grid: sg.answer, role: "answer", input: t.puzzle.grid, expected: expected,
      prev: prev, confidence: sg.confidence, valid: check.valid,
      emptyText: "(the model wrote no colour at the top-left: empty answer)",
    });
    const answerBox = $("grid-answer");
    answerBox.setAttribute("data-segment", String(S.seg));
    $("answer-caption").textContent = "Answer after segment " + S.seg;
    if (expected) {
      drawGrid($("grid-expected"), { kind: t.kind, grid: expected, role: "expected", input: t.puzzle.grid });
      $("expected-caption").textContent = "Expected (" + (S.ann.expected_source || "known answer") + ")";
    } else {
      $("grid-expected").textContent = "";
      $("grid-expected").appendChild(el("div", { class: "empty", text: "no known answer" }));
      $("expected-caption").textContent = "Expected";
    }
    const info = $("seg-info");
    info.textContent = "";
    const verdict = check.valid === true ? "valid" : check.valid === false ? "not valid" : "unchecked";
    const parts = [
      ["Segment ", String(S.seg)],
      [": answer ", verdict + (check.valid === false && check.reason ? " (" + check.reason + ")" : "")],
      [" · changed ", String(counts.changed)],
      [" · correct ", String(counts.correct)],
      [" · wrong ", String(counts.wrong)],
      [" · mean confidence ", fmt(meanOf(sg.confidence), 3)],
    ];
    for (const [a, b] of parts) {
      info.appendChild(document.createTextNode(a));
      info.appendChild(el("b", { text: b }));
    }
    info.setAttribute("data-valid", String(check.valid));
    info.setAttribute("data-changed", String(counts.changed));
  }

  function meanOf(grid) {
    if (!grid || !grid.length) return null;
    let sum = 0;
    let k = 0;
    for (const row of grid) for (const v of row) { sum += v; k++; }
    return k ? sum / k : null;
  }

  // -- planner and doer --------------------------------------------------------------------

  function renderPlanner() {
    if (!S.trace) return;
    renderResidualChart();
    renderSteps();
    renderQChart();
  }

  function niceTicks(lo, hi, count) {
    if (!(hi > lo)) { hi = lo + 1; }
    const span = hi - lo;
    const step0 = Math.pow(10, Math.floor(Math.log10(span / count)));
    const err = (count * step0) / span;
    const step = err <= 0.15 ? step0 * 10 : err <= 0.35 ? step0 * 5 : err <= 0.75 ? step0 * 2 : step0;
    const ticks = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
    return ticks;
  }

  function renderResidualChart() {
    const t = S.trace;
    const box = $("residual-chart");
    box.textContent = "";
    const pts = [];
    t.segments.forEach((sg, si) => sg.steps.forEach((st) => pts.push({ seg: si + 1, step: st.index, kind: st.kind, r: st.residual })));
    const W = Math.max(760, Math.min(1400, 24 + pts.length * 9));
    const H = 280;
    const m = { l: 58, r: 14, t: 22, b: 34 };
    const root = svg("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, "data-points": pts.length });
    const positive = pts.map((p) => p.r).filter((r) => r > 0);
    const lo = positive.length ? Math.min(...positive) : 1e-3;
    const hi = positive.length ? Math.max(...positive) : 1;
    const floor = lo / 2;
    const y0 = Math.log10(floor);
    const y1 = Math.log10(hi * 1.3);
    const X = (i) => m.l + (pts.length <= 1 ? (W - m.l - m.r) / 2 : (i * (W - m.l - m.r)) / (pts.length - 1));
    const Y = (r) => m.t + (H - m.t - m.b) * (1 - (Math.log10(Math.max(r, floor)) - y0) / (y1 - y0 || 1));
    // Segment bands.
    let i = 0;
    const half = pts.length > 1 ? (W - m.l - m.r) / (pts.length - 1) / 2 : 10;
    t.segments.forEach((sg, si) => {
      const a = X(i) - half;
      const b = X(i + sg.steps.length - 1) + half;
      const current = si + 1 === S.seg;
      svg("rect", { x: a, y: m.t, width: Math.max(1, b - a), height: H - m.t - m.b, fill: current ? "#fef3c7" : si % 2 ? "#f1f5f9" : "#f8fafc", "data-band": si + 1 }, root);
      if (b - a > 16) svg("text", { x: (a + b) / 2, y: m.t - 6, "text-anchor": "middle", "font-size": 11, fill: current ? "#92400e" : "#64748b", "font-weight": current ? 700 : 400, text: "s" + (si + 1) }, root);
      i += sg.steps.length;
    });
    // Axes (log scale: powers of ten).
    const axis = svg("g", { class: "axis" }, root);
    // Powers of ten; with less than two decades shown, also 2x and 5x.
    const mantissas = Math.floor(y1) - Math.ceil(y0) < 2 ? [1, 2, 5] : [1];
    for (let e = Math.floor(y0); e <= Math.ceil(y1); e++) {
      for (const k of mantissas) {
        const v = k * Math.pow(10, e);
        const lv = Math.log10(v);
        if (lv < y0 || lv > y1) continue;
        const y = Y(v);
        svg("line", { x1: m.l, x2: W - m.r, y1: y, y2: y, stroke: k === 1 ? "#d5dde8" : "#eef2f7" }, axis);
        svg("text", { x: m.l - 6, y: y + 4, "text-anchor": "end", text: Number(v.toPrecision(3)).toString() }, axis);
      }
    }
    svg("line", { x1: m.l, x2: m.l, y1: m.t, y2: H - m.b, stroke: "#94a3b8" }, axis);
    svg("text", { x: 14, y: (H - m.b + m.t) / 2, transform: "rotate(-90 14 " + (H - m.b + m.t) / 2 + ")", "text-anchor": "middle", text: "residual (log)" }, axis);
    svg("text", { x: (W + m.l) / 2, y: H - 8, "text-anchor": "middle", text: "inner step, segments one after another" }, axis);
    // Lines within each segment.
    i = 0;
    t.segments.forEach((sg) => {
      const d = sg.steps.map((st, k) => (k ? "L" : "M") + X(i + k).toFixed(1) + "," + Y(st.residual).toFixed(1)).join(" ");
      svg("path", { d: d, fill: "none", stroke: "#94a3b8", "stroke-width": 1.2 }, root);
      i += sg.steps.length;
    });
    // Points.
    pts.forEach((p, k) => {
      const x = X(k);
      const y = Y(p.r);
      const selected = p.seg === S.seg && p.step === S.step;
      const attrs = {
        class: "pt pt-" + p.kind, "data-seg": p.seg, "data-step": p.step, "data-kind": p.kind, "data-residual": p.r,
        fill: p.kind === "H" ? "#ea580c" : "#2563eb", stroke: selected ? "#0f172a" : "#ffffff", "stroke-width": selected ? 2 : 0.8,
      };
      let node;
      if (p.kind === "H") {
        const d = selected ? 7 : 5.5;
        node = svg("path", Object.assign(attrs, { d: "M" + x + "," + (y - d) + " L" + (x + d) + "," + y + " L" + x + "," + (y + d) + " L" + (x - d) + "," + y + " Z" }), root);
      } else {
        node = svg("circle", Object.assign(attrs, { cx: x, cy: y, r: selected ? 5.5 : 3.8 }), root);
      }
      title(node, "segment " + p.seg + ", step " + p.step + " (" + p.kind + "): residual " + fmt(p.r));
      node.addEventListener("click", () => selectStep(p.seg, p.step));
    });
    box.appendChild(root);
  }

  function selectStep(segIndex, stepIndex) {
    stopPlay();
    S.step = stepIndex;
    if (segIndex !== S.seg) {
      S.seg = segIndex;
      renderSegment();
      if (S.tab !== "planner") renderPlanner();
    } else {
      renderPlanner();
    }
  }

  function renderSteps() {
    const t = S.trace;
    const sg = seg();
    const strip = $("step-strip");
    strip.textContent = "";
    const hPerL = t.model.L_cycles;
    $("steps-title").textContent = "Inner steps of segment " + S.seg + " (" + t.model.H_cycles + " cycles of " + hPerL + " L steps then an H step)";
    if (S.step !== null && !sg.steps.some((st) => st.index === S.step)) S.step = null;
    sg.steps.forEach((st) => {
      const b = el("button", {
        type: "button", class: "kind-" + st.kind + (st.index === S.step ? " selected" : ""),
        "data-step": st.index, "data-kind": st.kind, "data-residual": st.residual,
        title: st.kind + " step " + st.index + ": residual " + st.residual,
      }, [el("span", { text: st.kind + st.index }), el("small", { text: fmt(st.residual, 3) })]);
      b.addEventListener("click", () => selectStep(S.seg, st.index));
      b.addEventListener("mouseenter", () => { S.hoverStep = st.index; renderStepGrid(); });
      b.addEventListener("mouseleave", () => { S.hoverStep = null; renderStepGrid(); });
      strip.appendChild(b);
    });
    renderStepGrid();
  }

  function renderStepGrid() {
    const t = S.trace;
    const sg = seg();
    const shown = S.hoverStep !== null ? S.hoverStep : S.step !== null ? S.step : sg.steps[sg.steps.length - 1].index;
    const k = sg.steps.findIndex((st) => st.index === shown);
    const st = sg.steps[k];
    let prev = null;
    if (k > 0) prev = sg.steps[k - 1].answer;
    else if (S.seg > 1) prev = t.segments[S.seg - 2].answer;
    drawGrid($("step-grid"), {
      kind: t.kind, grid: st.answer, role: "answer", input: t.puzzle.grid, expected: S.ann.expected, prev: prev,
      valid: null, max: 320, emptyText: "(empty answer)",
    });
    $("step-grid").setAttribute("data-segment", String(S.seg));
    $("step-grid").setAttribute("data-step", String(st.index));
    $("step-caption").textContent = "Answer at segment " + S.seg + ", step " + st.index + " (" + st.kind + ")" +
      (st.kind === "L" ? ": z_H unchanged, so the answer only moves at H steps" : "");
    const ro = $("step-readout");
    ro.textContent = "Segment " + S.seg + " · step " + st.index + " (" + st.kind + "): residual " + fmt(st.residual, 6);
    ro.setAttribute("data-segment", String(S.seg));
    ro.setAttribute("data-step", String(st.index));
    ro.setAttribute("data-kind", st.kind);
    ro.setAttribute("data-residual", String(st.residual));
  }

  function renderQChart() {
    const t = S.trace;
    const box = $("q-chart");
    box.textContent = "";
    const n = t.segments.length;
    const W = 760;
    const H = 230;
    const m = { l: 54, r: 120, t: 16, b: 34 };
    const qOnly = !!t.model.halt_on_q_halt_only;
    const vals = [0];
    t.segments.forEach((sg) => { vals.push(sg.q_halt); vals.push(sg.q_continue); });
    let lo = Math.min(...vals);
    let hi = Math.max(...vals);
    if (hi - lo < 1e-6) { lo -= 1; hi += 1; }
    const padv = (hi - lo) * 0.08;
    lo -= padv;
    hi += padv;
    const X = (s) => m.l + (n <= 1 ? (W - m.l - m.r) / 2 : ((s - 1) * (W - m.l - m.r)) / (n - 1));
    const Y = (v) => m.t + (H - m.t - m.b) * (1 - (v - lo) / (hi - lo));
    const root = svg("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H });
    const axis = svg("g", { class: "axis" }, root);
    for (const v of niceTicks(lo, hi, 5)) {
      svg("line", { x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v), stroke: v === 0 ? "#64748b" : "#e2e8f0", "stroke-dasharray": v === 0 ? "4,3" : null }, axis);
      svg("text", { x: m.l - 6, y: Y(v) + 4, "text-anchor": "end", text: fmt(v, 2) }, axis);
    }
    for (let s = 1; s <= n; s++) {
      if (n > 24 && s % Math.ceil(n / 24)) continue;
      svg("text", { x: X(s), y: H - m.b + 16, "text-anchor": "middle", text: String(s) }, axis);
    }
    svg("text", { x: (W - m.r + m.l) / 2, y: H - 4, "text-anchor": "middle", text: "segment" }, axis);
    svg("line", { x1: X(S.seg), x2: X(S.seg), y1: m.t, y2: H - m.b, stroke: "#f59e0b", "stroke-width": 2, "stroke-dasharray": "5,3" }, root);
    const halted = t.segments.findIndex((sg) => sg.halted) + 1;
    const firstSignal = t.segments.findIndex((sg) => sg.halt_signal) + 1;
    const mark = t.halt === "adaptive" ? halted : firstSignal;
    if (mark > 0) {
      svg("line", { x1: X(mark), x2: X(mark), y1: m.t, y2: H - m.b, stroke: "#15803d", "stroke-width": 2, class: "halt-mark", "data-seg": mark }, root);
      // The label goes left of the line near the right edge, where the legend is.
      const left = X(mark) > W - m.r - 110;
      svg("text", {
        x: X(mark) + (left ? -4 : 4), y: m.t + 12, "text-anchor": left ? "end" : "start", fill: "#15803d",
        "font-size": 12, "font-weight": 600, text: t.halt === "adaptive" ? "halted" : "Q head would halt",
      }, root);
    }
    const series = [
      { key: "q_halt", colour: "#dc2626", label: "Q-halt" },
      { key: "q_continue", colour: "#2563eb", label: qOnly ? "Q-continue (unused)" : "Q-continue" },
    ];
    series.forEach((sr, k) => {
      const d = t.segments.map((sg, i) => (i ? "L" : "M") + X(i + 1).toFixed(1) + "," + Y(sg[sr.key]).toFixed(1)).join(" ");
      svg("path", { d: d, fill: "none", stroke: sr.colour, "stroke-width": 2, "stroke-dasharray": qOnly && k === 1 ? "4,3" : null }, root);
      t.segments.forEach((sg, i) => {
        const c = svg("circle", {
          class: "pt q-" + sr.key, cx: X(i + 1), cy: Y(sg[sr.key]), r: i + 1 === S.seg ? 5 : 3.5, fill: sr.colour,
          stroke: sg.halt_signal && k === 0 ? "#15803d" : "#fff", "stroke-width": sg.halt_signal && k === 0 ? 2.5 : 1,
          "data-seg": i + 1, "data-value": sg[sr.key],
        }, root);
        title(c, "segment " + (i + 1) + ": " + sr.label + " " + fmt(sg[sr.key]) + (sg.halt_signal ? " (halt signal)" : ""));
        c.addEventListener("click", () => { stopPlay(); S.seg = i + 1; S.step = null; renderSegment(); });
      });
      svg("line", { x1: W - m.r + 12, x2: W - m.r + 30, y1: m.t + 10 + 18 * k, y2: m.t + 10 + 18 * k, stroke: sr.colour, "stroke-width": 2.5 }, root);
      svg("text", { x: W - m.r + 34, y: m.t + 14 + 18 * k, "font-size": 12, text: sr.label }, root);
    });
    svg("circle", { cx: W - m.r + 21, cy: m.t + 46, r: 4, fill: "#fff", stroke: "#15803d", "stroke-width": 2.5 }, root);
    svg("text", { x: W - m.r + 34, y: m.t + 50, "font-size": 12, text: "halt signal" }, root);
    box.appendChild(root);
  }

  // -- trajectories ------------------------------------------------------------------------

  function renderPca() {
    if (!S.trace) return;
    const box = $("pca-chart");
    const info = $("pca-info");
    box.textContent = "";
    info.textContent = "";
    const p = S.trace.pca;
    if (!p || !p.steps || !p.steps.length) {
      box.appendChild(el("div", { class: "empty", text: "This trace has no PCA projection." }));
      return;
    }
    const n = S.trace.segments.length;
    const all = p.z_H.concat(p.z_L);
    let x0 = Math.min(...all.map((q) => q[0]));
    let x1 = Math.max(...all.map((q) => q[0]));
    let y0 = Math.min(...all.map((q) => q[1]));
    let y1 = Math.max(...all.map((q) => q[1]));
    if (x1 - x0 < 1e-9) { x0 -= 1; x1 += 1; }
    if (y1 - y0 < 1e-9) { y0 -= 1; y1 += 1; }
    const W = 560;
    const H = 520;
    const m = { l: 50, r: 16, t: 16, b: 40 };
    const px = (x1 - x0) * 0.06;
    const py = (y1 - y0) * 0.06;
    x0 -= px; x1 += px; y0 -= py; y1 += py;
    const X = (v) => m.l + ((v - x0) * (W - m.l - m.r)) / (x1 - x0);
    const Y = (v) => m.t + (H - m.t - m.b) * (1 - (v - y0) / (y1 - y0));
    const root = svg("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, "data-points": p.steps.length });
    const axis = svg("g", { class: "axis" }, root);
    for (const v of niceTicks(x0, x1, 6)) {
      svg("line", { x1: X(v), x2: X(v), y1: m.t, y2: H - m.b, stroke: "#eef2f7" }, axis);
      svg("text", { x: X(v), y: H - m.b + 14, "text-anchor": "middle", text: fmt(v, 2) }, axis);
    }
    for (const v of niceTicks(y0, y1, 6)) {
      svg("line", { x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v), stroke: "#eef2f7" }, axis);
      svg("text", { x: m.l - 5, y: Y(v) + 4, "text-anchor": "end", text: fmt(v, 2) }, axis);
    }
    const ev = p.explained_variance || [0, 0];
    svg("text", { x: (W + m.l) / 2, y: H - 6, "text-anchor": "middle", text: "PC1 (" + Math.round(ev[0] * 100) + "% of variance)" }, axis);
    svg("text", { x: 12, y: (H - m.b) / 2, transform: "rotate(-90 12 " + (H - m.b) / 2 + ")", "text-anchor": "middle", text: "PC2 (" + Math.round(ev[1] * 100) + "%)" }, axis);
    for (const series of ["z_L", "z_H"]) {
      const pts = p[series];
      for (let k = 1; k < pts.length; k++) {
        const sgi = p.steps[k][0];
        svg("line", {
          x1: X(pts[k - 1][0]), y1: Y(pts[k - 1][1]), x2: X(pts[k][0]), y2: Y(pts[k][1]),
          stroke: segColour(sgi, n), "stroke-width": series === "z_H" ? 2 : 1.2,
          "stroke-dasharray": series === "z_L" ? "3,2" : null, "stroke-opacity": sgi === S.seg ? 1 : 0.45,
        }, root);
      }
    }
    for (const series of ["z_L", "z_H"]) {
      p[series].forEach((q, k) => {
        const [sgi, sti] = p.steps[k];
        const current = sgi === S.seg;
        const attrs = {
          class: "pt pca-" + series, "data-series": series, "data-seg": sgi, "data-step": sti, "data-x": q[0], "data-y": q[1],
          "fill-opacity": current ? 1 : 0.55,
        };
        let node;
        if (series === "z_H") {
          node = svg("circle", Object.assign(attrs, { cx: X(q[0]), cy: Y(q[1]), r: current ? 5.5 : 4, fill: segColour(sgi, n), stroke: "#fff", "stroke-width": 1 }), root);
        } else {
          const d = current ? 8 : 6;
          node = svg("rect", Object.assign(attrs, { x: X(q[0]) - d / 2, y: Y(q[1]) - d / 2, width: d, height: d, fill: "#fff", stroke: segColour(sgi, n), "stroke-width": 1.6 }), root);
        }
        title(node, series + " at segment " + sgi + ", step " + sti + ": (" + fmt(q[0], 3) + ", " + fmt(q[1], 3) + ")");
        node.addEventListener("click", () => { stopPlay(); S.seg = sgi; S.step = sti; renderSegment(); });
      });
    }
    const first = p.z_H[0];
    const last = p.z_H[p.z_H.length - 1];
    svg("text", { x: X(first[0]) + 7, y: Y(first[1]) - 7, "font-size": 12, "font-weight": 600, fill: "#0f172a", text: "start" }, root);
    svg("text", { x: X(last[0]) + 7, y: Y(last[1]) - 7, "font-size": 12, "font-weight": 600, fill: "#0f172a", text: "end" }, root);
    box.appendChild(root);
    info.appendChild(el("p", { text: "● z_H, the planner (solid line)   ■ z_L, the doer (dashed line)" }));
    info.appendChild(el("p", { text: p.steps.length + " inner steps over " + n + " segments; " + (p.space || "") + "." }));
    info.appendChild(el("p", { text: "Explained variance: PC1 " + fmt(ev[0] * 100, 1) + "%, PC2 " + fmt(ev[1] * 100, 1) + "%. Segment " + S.seg + " is drawn in full colour." }));
    const sw = el("div", { class: "swatches" });
    for (let s = 1; s <= n; s++) {
      const i = el("i", { class: "sw" });
      i.style.background = segColour(s, n);
      sw.appendChild(el("span", {}, [i, el("span", { text: "s" + s })]));
    }
    info.appendChild(sw);
  }

  // -- playback --------------------------------------------------------------------------

  function goSeg(k) {
    if (!S.trace) return;
    S.seg = Math.min(Math.max(1, k), S.trace.segments.length);
    S.step = null;
    renderSegment();
  }

  function stopPlay() {
    if (S.playing) clearInterval(S.playing);
    S.playing = null;
    $("seg-play").textContent = "▶ Play";
  }

  function togglePlay() {
    if (!S.trace) return;
    if (S.playing) { stopPlay(); return; }
    if (S.seg >= S.trace.segments.length) goSeg(1);
    $("seg-play").textContent = "❚❚ Pause";
    S.playing = setInterval(() => {
      goSeg(S.seg + 1);
      if (S.seg >= S.trace.segments.length) stopPlay();
    }, PLAY_MS);
  }

  // ------------------------------------------------------------------------------------------
  // Solving
  // ------------------------------------------------------------------------------------------

  async function solve(body) {
    setStatus("Solving…", "busy");
    for (const id of ["solve", "solve-example"]) $(id).disabled = true;
    try {
      body.halt = $("halt").value;
      const res = await api("/api/solve", body);
      loadTrace(res.trace, res.annotations, res.id, res.solution);
      const solved = "Solved in " + fmt(res.solution.seconds, 3) + " s: " + res.solution.verdict + ".";
      if (res.warning) setStatus(solved + " Warning: " + res.warning + ".", "error");
      else setStatus(solved, "info");
      showTab("puzzle");
    } catch (err) {
      setStatus(err.message, "error");
    } finally {
      for (const id of ["solve", "solve-example"]) $(id).disabled = false;
    }
  }

  function solveText() {
    const text = $("puzzle-text").value;
    if (!text.trim()) { setStatus("Type or paste a puzzle first, or generate one.", "error"); return; }
    const body = { puzzle: text };
    if ($("kind").value) body.kind = $("kind").value;
    solve(body);
  }

  function solveExample(split, index) {
    solve({ example: { split: split, index: index } });
  }

  async function generate() {
    const choice = S.gen[$("gen-kind").value];
    if (!choice) return;
    const g = choice.kind.generate;
    const body = { kind: choice.kind.name, size: choice.size === null ? Number($("gen-size").value) : choice.size };
    if (g.difficulties.length) body.difficulty = $("gen-difficulty").value;
    setStatus("Generating…", "busy");
    try {
      const res = await api("/api/generate", body);
      $("puzzle-text").value = res.text;
      $("kind").value = res.kind;
      setStatus("Generated a " + res.grid.length + "x" + res.grid.length + " " + res.kind + (res.difficulty ? " (" + res.difficulty + ")" : "") + ". Press Solve.", "info");
      if (!S.trace) drawGrid($("grid-input"), { kind: res.kind, grid: res.grid, role: "input", input: res.grid });
    } catch (err) {
      setStatus(err.message, "error");
    }
  }

  /* The Kind and Generate menus and the puzzle box's hint, from the kinds' descriptions: one
   * Generate entry per offered size, or one per kind whose size is typed in. */
  function buildKindControls() {
    const kindSel = $("kind");
    const genSel = $("gen-kind");
    S.gen = {};
    S.kinds.forEach((k) => {
      kindSel.appendChild(el("option", { value: k.name, text: k.title + (k.json_input ? " (JSON)" : "") }));
      const g = k.generate;
      if (!g) return;
      if (g.sizes) {
        g.sizes.forEach((n) => {
          const value = genValue(k.name, n);
          S.gen[value] = { kind: k, size: n };
          genSel.appendChild(el("option", { value: value, text: k.title + " " + n + "x" + n }));
        });
      } else {
        S.gen[genValue(k.name, null)] = { kind: k, size: null };
        genSel.appendChild(el("option", { value: genValue(k.name, null), text: k.title }));
      }
    });
    $("generate").disabled = !genSel.options.length;
    const hints = S.kinds.map((k) => k.input_hint);
    const list = hints.length > 2 ? hints.slice(0, -1).join(", ") + ", or " + hints[hints.length - 1] : hints.join(" or ");
    $("puzzle-text").placeholder = "Type or paste a puzzle: " + list;
    syncGenControls();
  }

  function genValue(kind, size) {
    return size === null ? kind : kind + "-" + size;
  }

  /* Show the size input or the difficulties the chosen Generate entry takes. */
  function syncGenControls() {
    const choice = S.gen[$("gen-kind").value];
    const g = choice ? choice.kind.generate : null;
    const range = g && choice.size === null ? g.size_range : null;
    $("gen-size-label").hidden = !range;
    if (range) {
      const size = $("gen-size");
      size.min = String(range[0]);
      size.max = String(range[1]);
      const n = Number(size.value);
      if (!(n >= range[0] && n <= range[1])) size.value = String(range[0]);
    }
    const levels = g ? g.difficulties : [];
    $("gen-diff-label").hidden = !levels.length;
    const diff = $("gen-difficulty");
    const shown = Array.from(diff.options, (opt) => opt.value);
    if (shown.join() !== levels.join()) {
      const keep = diff.value;
      diff.textContent = "";
      levels.forEach((d) => diff.appendChild(el("option", { value: d, text: d })));
      if (levels.includes(keep)) diff.value = keep;
    }
  }

  // ------------------------------------------------------------------------------------------
  // Run: training curves
  // ------------------------------------------------------------------------------------------

  async function pollRun() {
    clearTimeout(S.run.timer);
    const r = S.run;
    try {
      const res = await api("/api/run/metrics?since=" + r.since + "&gen=" + r.gen);
      if (res.reset) r.records = [];
      r.records = r.records.concat(res.records);
      r.since = res.start + res.records.length;
      r.gen = res.gen;
      if (S.tab === "run") renderRun();
      r.timer = setTimeout(pollRun, res.more ? 50 : POLL_MS);
      $("run-info").setAttribute("data-records", String(r.records.length));
    } catch (err) {
      $("run-status") && ($("run-status").textContent = "metrics: " + err.message);
      r.timer = setTimeout(pollRun, POLL_MS * 2);
    }
  }

  function renderRunInfo() {
    const box = $("run-info");
    const run = S.info && S.info.run;
    box.textContent = "";
    if (!run) { box.appendChild(el("div", { text: "No run: start the viewer with --run RUN_DIR to follow training." })); return; }
    box.appendChild(el("div", {}, [el("b", { text: "Run " + run.name }), el("span", { text: " · " + run.checkpoints.length + " checkpoint(s)" + (run.checkpoints.length ? ", latest " + run.checkpoints[run.checkpoints.length - 1] : "") })]));
    for (const problem of run.errors || []) box.appendChild(el("div", { class: "hint run-error", text: problem }));
    box.appendChild(el("div", { id: "run-status", class: "hint" }));
    if (run.config) {
      const det = el("details", {}, [el("summary", { text: "config.yaml" }), el("pre", { text: JSON.stringify(run.config, null, 2) })]);
      box.appendChild(det);
    }
  }

  function tickFmt(v, ticks) {
    const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : Math.abs(v) || 1;
    const decimals = Math.max(0, Math.min(8, -Math.floor(Math.log10(step))));
    return v.toFixed(decimals);
  }

  function lineChart(box, spec) {
    box.textContent = "";
    const W = 520;
    const H = 250;
    const m = { l: 58, r: 14, t: 40, b: 32 };
    const root = svg("svg", { viewBox: "0 0 " + W + " " + H, width: "100%", "data-chart": spec.key, class: "line-chart" });
    svg("text", { x: 8, y: 16, "font-size": 13, "font-weight": 600, fill: "#0f172a", text: spec.title }, root);
    let lx = 8;
    spec.series.forEach((s) => {
      if (!s.points.length) return;
      svg("line", { x1: lx, x2: lx + 14, y1: 29, y2: 29, stroke: s.colour, "stroke-width": 2.5, "stroke-dasharray": s.dash ? "4,3" : null }, root);
      svg("text", { x: lx + 18, y: 33, "font-size": 11, fill: "#334155", text: s.name }, root);
      lx += 30 + s.name.length * 6.2;
    });
    const pts = spec.series.flatMap((s) => s.points);
    if (!pts.length) {
      svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#64748b", text: "no data yet" }, root);
      box.appendChild(root);
      return;
    }
    let x0 = Math.min(...pts.map((p) => p[0]));
    let x1 = Math.max(...pts.map((p) => p[0]));
    let y0 = Math.min(...pts.map((p) => p[1]));
    let y1 = Math.max(...pts.map((p) => p[1]));
    if (spec.zero) y0 = Math.min(0, y0);
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    if (y1 - y0 < 1e-12) { y0 -= Math.abs(y0) * 0.1 + 1e-3; y1 += Math.abs(y1) * 0.1 + 1e-3; }
    y1 += (y1 - y0) * 0.05;
    const X = (v) => m.l + ((v - x0) * (W - m.l - m.r)) / (x1 - x0);
    const Y = (v) => m.t + (H - m.t - m.b) * (1 - (v - y0) / (y1 - y0));
    const axis = svg("g", { class: "axis" }, root);
    const yt = niceTicks(y0, y1, 5);
    for (const v of yt) {
      svg("line", { x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v), stroke: "#e8edf3" }, axis);
      svg("text", { x: m.l - 5, y: Y(v) + 4, "text-anchor": "end", text: tickFmt(v, yt) }, axis);
    }
    const xt = niceTicks(x0, x1, 6);
    for (const v of xt) svg("text", { x: X(v), y: H - m.b + 14, "text-anchor": "middle", text: tickFmt(v, xt) }, axis);
    svg("line", { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b, stroke: "#94a3b8" }, axis);
    svg("text", { x: W - m.r, y: H - 4, "text-anchor": "end", text: "step" }, axis);
    spec.series.forEach((s) => {
      if (!s.points.length) return;
      const g = svg("g", { class: "series", "data-name": s.name, "data-n": s.points.length, "data-last": s.points[s.points.length - 1][1] }, root);
      const d = s.points.map((p, k) => (k ? "L" : "M") + X(p[0]).toFixed(1) + "," + Y(p[1]).toFixed(1)).join(" ");
      svg("path", { d: d, fill: "none", stroke: s.colour, "stroke-width": s.dots ? 1.2 : 1.8, "stroke-dasharray": s.dash ? "4,3" : null }, g);
      if (s.dots || s.points.length === 1) {
        s.points.forEach((p) => title(svg("circle", { cx: X(p[0]), cy: Y(p[1]), r: 3.5, fill: s.colour }, g), s.name + " at step " + p[0] + ": " + fmt(p[1])));
      }
    });
    box.appendChild(root);
  }

  function renderRun() {
    const r = S.run;
    if (r.drawnTotal === r.records.length && r.drawnGen === r.gen) return;
    r.drawnTotal = r.records.length;
    r.drawnGen = r.gen;
    const train = r.records.filter((x) => x.kind === "train");
    const evals = r.records.filter((x) => x.kind === "eval");
    const tr = (key) => train.filter((x) => typeof x[key] === "number").map((x) => [x.step, x[key]]);
    // An eval record holds one object per evaluated set, and one per task score (keyed by a kind's
    // name: the task's own score of the whole dataset, whose `score_series` are plotted).
    const evalSets = {};
    const scores = {};
    evals.forEach((x) => {
      for (const [k, v] of Object.entries(x)) {
        if (!v || typeof v !== "object" || Array.isArray(v)) continue;
        const into = S.kinds.some((kind) => kind.name === k) ? scores : evalSets;
        (into[k] = into[k] || []).push([x.step, v]);
      }
    });
    const scoreKeys = (name) => {
      const kind = S.kinds.find((k) => k.name === name);
      if (kind && kind.score_series && kind.score_series.length) return kind.score_series;
      const keys = new Set();
      scores[name].forEach(([, v]) => Object.keys(v).forEach((key) => typeof v[key] === "number" && keys.add(key)));
      return [...keys];
    };
    const scoreSeries = Object.keys(scores).flatMap((name) => scoreKeys(name).map((key) => [name, key]));
    const ev = (key) => Object.entries(evalSets).map(([name, rows], i) => ({
      name: "eval " + name + (key === "lm_loss" ? " lm" : ""), colour: ["#15803d", "#7c3aed", "#0891b2"][i % 3], dots: true,
      points: rows.filter((p) => typeof p[1][key] === "number").map((p) => [p[0], p[1][key]]),
    }));
    lineChart($("chart-loss"), { key: "loss", title: "Loss", series: [
      { name: "lm loss", colour: "#2563eb", points: tr("lm_loss") },
      { name: "q-halt loss", colour: "#ea580c", points: tr("q_halt_loss") },
    ].concat(ev("lm_loss")) });
    lineChart($("chart-acc"), { key: "accuracy", title: "Exact accuracy", zero: true, series: [
      { name: "train exact", colour: "#2563eb", points: tr("exact_accuracy") },
      { name: "train token", colour: "#93c5fd", dash: true, points: tr("accuracy") },
    ].concat(ev("exact_accuracy")) });
    $("chart-score").hidden = !scoreSeries.length;
    if (scoreSeries.length) {
      lineChart($("chart-score"), { key: "score", title: "Dataset score (evaluation)", zero: true, series: ev("exact_accuracy").map((s) => ({ ...s, name: s.name + " exact", dash: true })).concat(
        scoreSeries.map(([name, key], i) => ({
          name: name + " " + key, colour: ["#b91c1c", "#d97706", "#0f766e", "#4338ca"][i % 4], dots: true,
          points: scores[name].filter((p) => typeof p[1][key] === "number").map((p) => [p[0], p[1][key]]),
        }))) });
    }
    lineChart($("chart-seg"), { key: "segments", title: "Mean segments", zero: true, series: [
      { name: "train", colour: "#2563eb", points: tr("steps") },
    ].concat(ev("steps")) });
    lineChart($("chart-lr"), { key: "lr", title: "Learning rate", zero: true, series: [
      { name: "lr", colour: "#7c3aed", points: tr("lr") },
    ] });
    const body = $("eval-table").querySelector("tbody");
    body.textContent = "";
    const rows = [];
    evals.forEach((x) => {
      for (const [k, v] of Object.entries(x)) if (v && typeof v === "object" && !Array.isArray(v)) rows.push([x.step, k, v]);
    });
    rows.reverse().slice(0, 50).forEach(([step, name, v]) => {
      if (scores[name]) {  // a task's dataset score: its followed values in one cell
        const shown = scoreKeys(name).filter((key) => typeof v[key] === "number").map((key) => key + " " + fmt(v[key], 4));
        body.appendChild(el("tr", { "data-step": step, "data-score": name }, [
          el("td", { text: String(step) }), el("td", { text: name }), el("td", { colspan: 4, text: shown.join(" · ") }),
        ]));
        return;
      }
      body.appendChild(el("tr", { "data-step": step }, [
        el("td", { text: String(step) }), el("td", { text: name }), el("td", { text: fmt(v.exact_accuracy, 4) }),
        el("td", { text: fmt(v.accuracy, 4) }), el("td", { text: fmt(v.steps, 2) }), el("td", { text: fmt(v.lm_loss, 4) }),
      ]));
    });
    if (!rows.length) body.appendChild(el("tr", {}, [el("td", { colspan: 6, text: "no evaluation yet" })]));
    const last = r.records.length ? r.records[r.records.length - 1] : null;
    const status = $("run-status");
    if (status) {
      status.textContent = r.records.length + " records" + (last ? ", last at step " + last.step : "") +
        " · refreshed " + new Date().toLocaleTimeString() + " (every " + POLL_MS / 1000 + " s)";
    }
  }

  // ------------------------------------------------------------------------------------------
  // Dataset browser
  // ------------------------------------------------------------------------------------------

  async function loadDataset() {
    if (S.data.loaded) return;
    S.data.loaded = true;
    const info = $("data-info");
    info.textContent = "";
    if (!S.info || !S.info.data) {
      info.appendChild(el("div", { text: "No dataset: start the viewer with --data DIR to browse examples." }));
      return;
    }
    const d = S.info.data;
    const parts = Object.entries(d.splits).map(([name, s]) => s.error ? name + ": " + s.error : name + ": " + s.examples + " examples, " + s.puzzles + " puzzles, " + s.groups + " groups");
    info.appendChild(el("div", {}, [el("b", { text: "Dataset " + d.name }), el("span", { text: " · " + parts.join(" · ") })]));
    const sel = $("data-split");
    sel.textContent = "";
    for (const name of Object.keys(d.splits)) sel.appendChild(el("option", { value: name, text: name }));
    S.data.split = d.splits.test ? "test" : Object.keys(d.splits)[0];
    sel.value = S.data.split;
    await loadPage(0);
  }

  async function loadPage(page) {
    try {
      const res = await api("/api/dataset/examples?split=" + encodeURIComponent(S.data.split) + "&page=" + page + "&per_page=12");
      S.data.page = res.page;
      S.data.pages = res.pages;
      $("data-page").textContent = "page " + (res.page + 1) + " of " + res.pages + " (" + res.total + " examples)";
      $("data-prev").disabled = res.page <= 0;
      $("data-next").disabled = res.page + 1 >= res.pages;
      const items = $("data-items");
      items.textContent = "";
      items.setAttribute("data-page", String(res.page));
      res.items.forEach((it) => {
        const a = el("div");
        const b = el("div");
        const card = el("div", { class: "card", "data-index": it.index }, [
          el("h4", { text: "#" + it.index + " · " + it.name, title: it.name }),
          el("div", { class: "pair" }, [a, b]),
        ]);
        drawGrid(a, { kind: it.kind, grid: it.input, role: "input", input: it.input, max: 110 });
        if (it.label) drawGrid(b, { kind: it.kind, grid: it.label, role: "expected", input: it.input, max: 110 });
        card.addEventListener("click", () => showExample(it.index));
        items.appendChild(card);
      });
    } catch (err) {
      setStatus(err.message, "error");
    }
  }

  async function showExample(index) {
    try {
      const it = await api("/api/dataset/example?split=" + encodeURIComponent(S.data.split) + "&index=" + index + "&variants=16");
      for (const c of document.querySelectorAll(".card")) c.classList.toggle("selected", Number(c.getAttribute("data-index")) === index);
      const box = $("data-detail");
      box.textContent = "";
      box.setAttribute("data-index", String(index));
      const inBox = el("div");
      const labBox = el("div");
      const btn = el("button", { type: "button", class: "primary", text: "Solve with the model" });
      btn.addEventListener("click", () => {
        $("example-split").value = S.data.split;
        $("example-index").value = String(index);
        solveExample(S.data.split, index);
      });
      box.appendChild(el("h2", { text: "Example " + index + " · " + it.name + " (group " + it.group + ", " + it.group_size + " puzzles)" }));
      box.appendChild(el("div", { class: "pair" }, [
        el("figure", {}, [el("figcaption", { text: "Input" }), inBox]),
        el("figure", {}, [el("figcaption", { text: "Label" }), labBox]),
        el("div", {}, [btn]),
      ]));
      drawGrid(inBox, { kind: it.kind, grid: it.input, role: "input", input: it.input, max: 300 });
      if (it.label) drawGrid(labBox, { kind: it.kind, grid: it.label, role: "expected", input: it.input, max: 300 });
      else labBox.appendChild(el("div", { class: "empty", text: "no label" }));
      box.appendChild(el("h3", { text: it.variants.length ? "Augmented variants (the group's other puzzles" + (it.group_size - 1 > it.variants.length ? ", first " + it.variants.length + " of " + (it.group_size - 1) : "") + ")" : "No augmented variants in this group" }));
      const vs = el("div", { class: "variants" });
      it.variants.forEach((v) => {
        const g = el("div");
        const fig = el("figure", { "data-index": v.index }, [el("figcaption", { text: "#" + v.index + " · " + v.name, title: v.name }), g]);
        drawGrid(g, { kind: v.kind, grid: v.input, role: "input", input: v.input, max: 140 });
        fig.addEventListener("click", () => showExample(v.index));
        vs.appendChild(fig);
      });
      box.appendChild(vs);
    } catch (err) {
      setStatus(err.message, "error");
    }
  }

  // ------------------------------------------------------------------------------------------
  // Agent: episodes of a BabyAI policy, before / after, fine-tuning with live curves
  // ------------------------------------------------------------------------------------------

  const A = {
    info: null,
    traces: [], // one or two episode traces on the same level and seed
    t: 0, // the frame shown
    timer: null,
    job: null, // the fine-tune being followed: {id, state}
    jobTimer: null,
    base: null, // the model the current fine-tune started from
  };

  function pct(x) {
    return x === null || x === undefined ? "–" : (100 * x).toFixed(1) + "%";
  }

  function rgbOf(legend, colourIndex) {
    const c = legend.rgb[legend.colors[colourIndex]];
    return c ? "rgb(" + c.join(",") + ")" : "#94a3b8";
  }

  function drawWorld(box, trace, frame) {
    const legend = trace.legend;
    box.textContent = "";
    const rows = frame.grid.length;
    const cols = rows ? frame.grid[0].length : 0;
    const px = Math.max(14, Math.min(34, Math.floor(300 / Math.max(rows, cols, 1))));
    const root = svg("svg", { viewBox: "0 0 " + cols * px + " " + rows * px, width: cols * px, height: rows * px, class: "agent-svg", "data-t": frame.t, "data-agent": frame.agent.join(",") });
    svg("rect", { x: 0, y: 0, width: cols * px, height: rows * px, fill: "#111827" }, root);
    for (let y = 0; y < rows; y++) {
      for (let x = 0; x < cols; x++) {
        const [obj, colour, state] = frame.grid[y][x];
        const how = legend.draw[obj] || { shape: "glyph", label: "?" };
        const fill = rgbOf(legend, colour);
        const g = svg("g", { "data-object": legend.objects[obj] }, root);
        const x0 = x * px;
        const y0 = y * px;
        svg("rect", { x: x0, y: y0, width: px, height: px, fill: "none", stroke: "#1f2937", "stroke-width": 0.5 }, g);
        if (how.shape === "fill") svg("rect", { x: x0, y: y0, width: px, height: px, fill: fill }, g);
        if (how.shape === "frame") svg("rect", { x: x0 + 2, y: y0 + 2, width: px - 4, height: px - 4, fill: "none", stroke: fill, "stroke-width": 3 }, g);
        if (how.shape === "circle") svg("circle", { cx: x0 + px / 2, cy: y0 + px / 2, r: px * 0.32, fill: fill }, g);
        if (how.shape === "square") svg("rect", { x: x0 + px * 0.2, y: y0 + px * 0.2, width: px * 0.6, height: px * 0.6, fill: "none", stroke: fill, "stroke-width": 2.5 }, g);
        const label = how.label + (how.shape === "frame" ? legend.state_marks[state] || "" : "");
        if (label) svg("text", { x: x0 + px / 2, y: y0 + px * 0.7, "text-anchor": "middle", "font-size": px * 0.6, fill: how.shape === "fill" ? "#111827" : fill, text: label }, g);
        title(g, legend.objects[obj] + (how.shape === "none" ? "" : " · " + legend.colors[colour] + (how.shape === "frame" ? " · " + legend.states[state] : "")));
      }
    }
    const [ax, ay] = frame.agent;
    const agent = svg("text", { x: ax * px + px / 2, y: ay * px + px * 0.72, "text-anchor": "middle", "font-size": px * 0.7, fill: "#f87171", class: "agent-me", text: legend.arrows[frame.dir] }, root);
    title(agent, "the agent, facing " + legend.directions[frame.dir] + (frame.carrying ? ", carrying a " + legend.colors[frame.carrying[1]] + " " + legend.objects[frame.carrying[0]] : ""));
    box.appendChild(root);
  }

  function thoughtRow(label, names, probs, chosen, botChoice, cls) {
    const conf = probs && chosen !== null && chosen !== undefined ? probs[chosen] : null;
    const agrees = botChoice === null || botChoice === undefined ? null : botChoice === chosen;
    const row = el("div", { class: "thought " + cls, "data-choice": chosen === null || chosen === undefined ? "" : names[chosen], "data-confidence": conf === null ? "" : conf }, [
      el("div", { class: "thought-head" }, [
        el("b", { text: label + ": " }),
        el("span", { class: "thought-choice", text: chosen === null || chosen === undefined ? "–" : names[chosen] }),
        el("span", { class: "thought-conf", text: conf === null ? "" : " " + pct(conf) }),
      ]),
      el("div", { class: "thought-bot" + (agrees === false ? " differs" : ""), text: "bot: " + (botChoice === null || botChoice === undefined ? "–" : names[botChoice]) + (agrees === null ? "" : agrees ? " ✓" : " ✗") }),
    ]);
    if (probs) {
      const bars = el("div", { class: "bars" });
      probs.forEach((p, i) => {
        const fill = el("span", { class: "bar-fill" });
        fill.style.width = (100 * p).toFixed(1) + "%"; // CSSOM, allowed by the page's CSP
        bars.appendChild(el("div", { class: "bar" + (i === chosen ? " chosen" : ""), title: names[i] + " " + pct(p) }, [
          el("span", { class: "bar-name", text: names[i] }),
          fill,
        ]));
      });
      row.appendChild(bars);
    }
    return row;
  }

  function drawThoughts(box, trace, frame) {
    const legend = trace.legend;
    box.textContent = "";
    if (frame.action === null) {
      box.appendChild(el("div", { class: "thought done", text: trace.success ? "mission complete" : "episode over (not solved)" }));
      return;
    }
    if (trace.hierarchy) box.appendChild(thoughtRow("Planner (H) sub-goal", legend.subgoals, frame.subgoal_probs, frame.subgoal, frame.bot_subgoal, "planner"));
    box.appendChild(thoughtRow((trace.hierarchy ? "Doer (L)" : "Flat policy") + " action", legend.actions, frame.probs, frame.action, frame.bot_action, "doer"));
  }

  function renderAgentFrame() {
    const n = Math.max(0, ...A.traces.map((tr) => tr.frames.length - 1));
    A.t = Math.max(0, Math.min(A.t, n));
    $("agent-slider").max = String(n);
    $("agent-slider").value = String(A.t);
    $("agent-step").textContent = A.traces.length ? "step " + A.t + " / " + n : "";
    ["a", "b"].forEach((which, i) => {
      const box = $("agent-player-" + which);
      const trace = A.traces[i];
      box.hidden = !trace;
      if (!trace) return;
      const frame = trace.frames[Math.min(A.t, trace.frames.length - 1)];
      drawWorld(box.querySelector(".agent-world"), trace, frame);
      drawThoughts(box.querySelector(".agent-thoughts"), trace, frame);
    });
  }

  function showEpisodes(traces) {
    stopAgentPlay();
    A.traces = traces;
    A.t = 0;
    ["a", "b"].forEach((which, i) => {
      const box = $("agent-player-" + which);
      const tr = traces[i];
      if (!tr) return;
      box.querySelector(".agent-title").textContent = (traces.length > 1 ? (i ? "after: " : "before: ") : "") + tr.model;
      box.querySelector(".agent-summary").textContent = tr.level + " seed " + tr.seed + " · “" + tr.mission + "” · " + (tr.success ? "success" : "failure") + " in " + tr.steps + " steps (bot: " + (tr.bot_steps === null ? "–" : tr.bot_steps) + ")" + (tr.shadow_agreement === null ? "" : " · agrees with the bot on " + pct(tr.shadow_agreement) + " of steps");
      box.setAttribute("data-success", tr.success ? "1" : "0");
      box.setAttribute("data-steps", tr.steps);
    });
    $("tab-agent").setAttribute("data-episodes", traces.length);
    renderAgentFrame();
  }

  function stopAgentPlay() {
    if (A.timer) clearInterval(A.timer);
    A.timer = null;
    $("agent-toggle").textContent = "▶ Play";
  }

  function toggleAgentPlay() {
    if (A.timer) return stopAgentPlay();
    if (!A.traces.length) return;
    if (A.t >= Number($("agent-slider").max)) A.t = 0;
    $("agent-toggle").textContent = "❚❚ Pause";
    A.timer = setInterval(() => {
      if (A.t >= Number($("agent-slider").max)) return stopAgentPlay();
      A.t += 1;
      renderAgentFrame();
    }, 1000 / Number($("agent-speed").value));
  }

  async function playEpisodes(models) {
    const level = $("agent-level").value;
    const seed = Number($("agent-seed").value);
    setStatus("Playing " + models.join(" and ") + " on " + level + " seed " + seed + "…", "busy");
    try {
      const traces = [];
      for (const model of models) traces.push(await api("/api/agent/play", { model: model, level: level, seed: seed }));
      showEpisodes(traces);
      setStatus("");
      toggleAgentPlay();
    } catch (err) {
      setStatus(err.message, "error");
    }
  }

  function fillSelect(sel, values, keep) {
    const old = keep ? sel.value : null;
    sel.textContent = "";
    values.forEach(([value, text]) => sel.appendChild(el("option", { value: value, text: text })));
    if (old && values.some(([v]) => v === old)) sel.value = old;
  }

  function agentModels() {
    const out = (A.info.models || []).map((m) => [m, m]);
    for (const [id, job] of Object.entries(A.info.jobs || {})) {
      if (job === "done") out.push(["job:" + id, "fine-tuned " + id]);
    }
    return out;
  }

  async function loadAgent() {
    try {
      A.info = await api("/api/agent/info");
    } catch (err) {
      setStatus(err.message, "error");
      return;
    }
    const ok = A.info.available && A.info.models.length;
    $("agent-unavailable").hidden = !!ok;
    $("agent-unavailable").textContent = A.info.available ? "No packaged agent." : "The agent needs MiniGrid: pip install 'hierarchical-reasoning-model[agent]'.";
    const levels = A.info.levels.map((l) => [l, l]);
    const fresh = !$("agent-level").options.length;
    fillSelect($("agent-level"), levels, true);
    fillSelect($("ft-level"), levels, true);
    if (fresh) {
      if (A.info.levels.includes("UnlockLocal")) $("agent-level").value = "UnlockLocal";
      if (A.info.levels.includes("UnlockPickup")) $("ft-level").value = "UnlockPickup";
    }
    fillSelect($("agent-model"), agentModels(), true);
    fillSelect($("agent-after"), agentModels(), true);
    for (const id of ["agent-play", "agent-compare", "ft-start", "agent-generalize"]) $(id).disabled = !ok;
  }

  function renderFineTune() {
    const job = A.job && A.job.state;
    const records = job ? job.records : [];
    const train = records.filter((r) => r.kind === "train");
    const evals = records.filter((r) => r.kind === "eval");
    const pts = (rows, key) => rows.filter((r) => typeof r[key] === "number").map((r) => [r.step, r[key]]);
    lineChart($("ft-chart-loss"), { key: "ft-loss", title: "Fine-tuning loss", zero: true, series: [
      { name: "action loss", colour: "#2563eb", points: pts(train, "action_loss") },
      { name: "sub-goal loss", colour: "#ea580c", points: pts(train, "subgoal_loss") },
    ] });
    lineChart($("ft-chart-success"), { key: "ft-success", title: "Success on held-out seeds", zero: true, series: [
      { name: "success", colour: "#15803d", dots: true, points: pts(evals, "success") },
      { name: "train action acc.", colour: "#93c5fd", dash: true, points: pts(train, "action_accuracy") },
    ] });
    const last = evals.length ? evals[evals.length - 1] : null;
    const dash = $("agent-dash");
    dash.textContent = "";
    const card = (key, name, value, note) => dash.appendChild(el("div", { class: "dash-card", "data-key": key, "data-value": value === null || value === undefined ? "" : value }, [
      el("div", { class: "dash-name", text: name }),
      el("div", { class: "dash-value", text: key === "steps_vs_bot" ? (value === null || value === undefined ? "–" : fmt(value, 2) + "×") : pct(value) }),
      el("div", { class: "dash-note", text: note }),
    ]));
    const where = last ? "held-out " + job.level + ", step " + last.step : "no evaluation yet: start a fine-tune";
    card("subgoal_accuracy", "Planner accuracy", last ? last.subgoal_accuracy : null, where + " (sub-goal vs the bot's, teacher-forced)");
    card("action_accuracy", "Doer accuracy", last ? last.action_accuracy : null, where + " (action vs the bot's, teacher-forced)");
    card("success", "Success", last ? last.success : null, where);
    card("steps_vs_bot", "Steps vs the bot", last ? last.steps_vs_bot : null, where + " (solved episodes)");
    if (!job) { $("ft-status").textContent = ""; return; }
    const last_train = train.length ? train[train.length - 1] : null;
    $("ft-status").textContent = "job " + A.job.id + ": " + job.status + (job.from_scratch ? " (flat model, from scratch)" : "") + (last_train ? " · step " + last_train.step : "") + (job.error ? " · " + job.error : "");
    $("ft-status").setAttribute("data-status", job.status);
  }

  async function pollJob() {
    if (!A.job) return;
    try {
      A.job.state = await api("/api/agent/job/" + A.job.id);
    } catch (err) {
      setStatus(err.message, "error");
      return;
    }
    renderFineTune();
    const st = A.job.state.status;
    if (st === "done" || st === "failed") {
      clearInterval(A.jobTimer);
      A.jobTimer = null;
      $("ft-start").disabled = false;
      if (st === "done") {
        await loadAgent();
        $("agent-model").value = A.base;
        $("agent-after").value = A.job.state.model;
        $("agent-level").value = A.job.state.level;
        setStatus("Fine-tune " + A.job.id + " finished: compare before and after on the same seed.", "info");
      } else {
        setStatus("Fine-tune failed: " + A.job.state.error, "error");
      }
    }
  }

  async function startFineTune() {
    const body = {
      model: $("agent-model").value,
      level: $("ft-level").value,
      episodes: Number($("ft-episodes").value),
      steps: Number($("ft-steps").value),
      freeze: $("ft-freeze").value || null,
      hierarchy: $("ft-hierarchy").checked,
    };
    if (!(body.episodes >= 5 && body.episodes <= 50)) return setStatus("Demonstrations: 5 to 50.", "error");
    try {
      const r = await api("/api/agent/finetune", body);
      A.base = body.model;
      A.job = { id: r.job, state: null };
      $("ft-start").disabled = true;
      setStatus("Fine-tune " + r.job + " started: recording demonstrations, then training.", "busy");
      A.jobTimer = setInterval(pollJob, 1000);
      pollJob();
    } catch (err) {
      setStatus(err.message, "error");
    }
  }

  async function measureGeneralization() {
    const models = [...new Set([$("agent-model").value, $("agent-after").value].filter(Boolean))];
    const episodes = Number($("gen-episodes").value);
    if (!(episodes >= 1 && episodes <= 100)) return setStatus("Episodes per level: 1 to 100.", "error");
    const table = $("agent-gen");
    table.textContent = "";
    table.appendChild(el("tr", {}, [el("th", { text: "level" }), ...models.map((m) => el("th", { text: m }))]));
    $("agent-generalize").disabled = true;
    $("gen-status").removeAttribute("data-status");
    try {
      for (const level of A.info.levels) {
        const row = el("tr", { "data-level": level }, [el("td", { text: level })]);
        table.appendChild(row);
        for (const model of models) {
          $("gen-status").textContent = model + " on " + level + "…";
          const r = await api("/api/agent/evaluate", { model: model, level: level, episodes: episodes });
          const seen = r.trained_on === r.level ? " (its level, unseen seeds)" : "";
          row.appendChild(el("td", { "data-success": r.success, text: pct(r.success) + (r.steps_vs_bot ? " · " + fmt(r.steps_vs_bot, 2) + "× bot steps" : "") + seen }));
        }
      }
      $("gen-status").textContent = episodes + " held-out seeds per level, from " + A.info.levels.length + " levels";
      $("gen-status").setAttribute("data-status", "done");
    } catch (err) {
      $("gen-status").textContent = "";
      setStatus(err.message, "error");
    } finally {
      $("agent-generalize").disabled = false;
    }
  }

  function wireAgent() {
    $("agent-play").addEventListener("click", () => playEpisodes([$("agent-model").value]));
    $("agent-compare").addEventListener("click", () => playEpisodes([$("agent-model").value, $("agent-after").value]));
    $("agent-toggle").addEventListener("click", toggleAgentPlay);
    $("agent-first").addEventListener("click", () => { stopAgentPlay(); A.t = 0; renderAgentFrame(); });
    $("agent-prev").addEventListener("click", () => { stopAgentPlay(); A.t -= 1; renderAgentFrame(); });
    $("agent-next").addEventListener("click", () => { stopAgentPlay(); A.t += 1; renderAgentFrame(); });
    $("agent-slider").addEventListener("input", (e) => { stopAgentPlay(); A.t = Number(e.target.value); renderAgentFrame(); });
    $("agent-speed").addEventListener("change", () => { if (A.timer) { stopAgentPlay(); toggleAgentPlay(); } });
    $("ft-hierarchy").addEventListener("change", (e) => { $("ft-freeze").disabled = !e.target.checked; if (!e.target.checked) $("ft-freeze").value = ""; });
    $("ft-start").addEventListener("click", startFineTune);
    $("agent-generalize").addEventListener("click", measureGeneralization);
  }

  // ------------------------------------------------------------------------------------------
  // Tabs and start-up
  // ------------------------------------------------------------------------------------------

  function showTab(name) {
    S.tab = name;
    for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.getAttribute("data-tab") === name);
    for (const s of document.querySelectorAll(".tab")) s.classList.toggle("active", s.id === "tab-" + name);
    $("segbar").hidden = !S.trace || !["puzzle", "planner", "trajectories"].includes(name);
    document.body.setAttribute("data-tab", name);
    if (name === "planner" && S.trace) renderPlanner();
    if (name === "trajectories" && S.trace) renderPca();
    if (name === "run") { renderRunInfo(); S.run.drawnTotal = -1; renderRun(); }
    if (name === "dataset") loadDataset();
    if (name === "agent") { loadAgent(); renderFineTune(); }
    if (!S.offline && location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
  }

  function describeModel(info) {
    const box = $("model-info");
    if (S.offline) {
      const m = S.trace.model;
      box.textContent = "exported trace · " + m.name + " · " + m.seq_len + " cells · H" + m.H_cycles + "×L" + m.L_cycles;
      return;
    }
    if (info.model) {
      const m = info.model;
      box.textContent = m.name + " · " + m.seq_len + " cells, " + m.vocab_size + " tokens · H" + m.H_cycles + "×L" + m.L_cycles + " · ≤" + m.halt_max_steps + " segments";
      box.title = m.source || "";
    } else {
      box.textContent = info.model_error ? "model: " + info.model_error : "no model loaded";
    }
  }

  function applyModelDefaults(info) {
    const m = info.model;
    if (!m) return;
    if (m.kind) $("kind").value = m.kind;
    const g = kindInfo(m.kind).generate;
    if (g && m.side) {
      if (g.sizes && g.sizes.includes(m.side)) {
        $("gen-kind").value = genValue(m.kind, m.side);
      } else if (g.size_range) {
        $("gen-kind").value = genValue(m.kind, null);
        $("gen-size").value = String(m.side);
      }
    }
    syncGenControls();
    // The level the model's puzzles came from (its card's "difficulty"), where the generator offers it.
    const diff = $("gen-difficulty");
    if (m.difficulty && Array.from(diff.options, (o) => o.value).includes(m.difficulty)) diff.value = m.difficulty;
  }

  function wire() {
    for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.getAttribute("data-tab")));
    $("seg-slider").addEventListener("input", (e) => { stopPlay(); goSeg(Number(e.target.value)); });
    $("seg-prev").addEventListener("click", () => { stopPlay(); goSeg(S.seg - 1); });
    $("seg-next").addEventListener("click", () => { stopPlay(); goSeg(S.seg + 1); });
    $("seg-first").addEventListener("click", () => { stopPlay(); goSeg(1); });
    $("seg-last").addEventListener("click", () => { stopPlay(); goSeg(S.trace ? S.trace.segments.length : 1); });
    $("seg-play").addEventListener("click", togglePlay);
    document.addEventListener("keydown", (e) => {
      if (!S.trace || ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement && document.activeElement.tagName)) return;
      if (e.key === "ArrowRight") goSeg(S.seg + 1);
      if (e.key === "ArrowLeft") goSeg(S.seg - 1);
    });
    if (S.offline) return;
    $("solve").addEventListener("click", solveText);
    $("generate").addEventListener("click", generate);
    $("gen-kind").addEventListener("change", syncGenControls);
    $("solve-example").addEventListener("click", () => solveExample($("example-split").value, Number($("example-index").value)));
    $("data-split").addEventListener("change", (e) => { S.data.split = e.target.value; loadPage(0); });
    $("data-prev").addEventListener("click", () => loadPage(Math.max(0, S.data.page - 1)));
    $("data-next").addEventListener("click", () => loadPage(S.data.page + 1));
    wireAgent();
  }

  async function start() {
    const embedded = document.getElementById("hrm-embedded-trace");
    if (embedded) {
      S.offline = true;
      document.body.classList.add("offline");
      wire();
      try {
        const payload = JSON.parse(embedded.textContent);
        S.kinds = payload.kinds || [];
        loadTrace(payload.trace, payload.annotations, null, null);
        describeModel(null);
      } catch (err) {
        setStatus("The embedded trace cannot be read: " + err.message, "error");
      }
      showTab("puzzle");
      document.body.setAttribute("data-ready", "1");
      return;
    }
    wire();
    syncGenControls();
    try {
      S.info = await api("/api/info");
    } catch (err) {
      setStatus(err.message, "error");
      document.body.setAttribute("data-ready", "1");
      return;
    }
    S.kinds = S.info.kinds || [];
    buildKindControls();
    describeModel(S.info);
    applyModelDefaults(S.info);
    const splits = S.info.data ? Object.keys(S.info.data.splits) : [];
    const sel = $("example-split");
    for (const name of splits) sel.appendChild(el("option", { value: name, text: name }));
    if (splits.includes("test")) sel.value = "test";
    for (const id of ["example-label", "solve-example"]) $(id).hidden = !splits.length;
    $("solve").disabled = false;
    if (!S.info.model) {
      setStatus((S.info.model_error ? S.info.model_error + " " : "No model loaded: ") + "you can still generate puzzles, browse data and follow a run.", S.info.model_error ? "error" : "info");
    }
    if (S.info.run) pollRun();
    const want = location.hash.replace("#", "");
    showTab(["puzzle", "planner", "trajectories", "run", "dataset", "agent"].includes(want) ? want : "puzzle");
    document.body.setAttribute("data-ready", "1");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
