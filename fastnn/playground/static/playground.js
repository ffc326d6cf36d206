// The fastnn playground page. Training runs on the server (fastnn.nn on the CPU kernels): this
// script sends the settings, polls the session's state a few times a second and draws it.
"use strict";

(function () {
  const TOKEN = new URLSearchParams(location.search).get("token") || "";
  const COLORS = ["#f59322", "#0877bd", "#2ca02c", "#9467bd", "#d62728"];
  const LABEL_RGB = COLORS.map(hexRgb);
  const LRS = [0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
  const L2S = [0, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
  const DROPOUTS = [0, 0.1, 0.2, 0.3, 0.5];
  const BATCHES = [1, 2, 4, 8, 10, 16, 32, 64, 128, 256];
  const FEATURE_NAMES = {x: "x\u2081", y: "x\u2082", x2: "x\u2081\u00b2", y2: "x\u2082\u00b2",
                         xy: "x\u2081x\u2082", sinx: "sin x\u2081", siny: "sin x\u2082"};
  const DATASET_NAMES = {circle: "Circle", xor: "XOR", gauss: "Gaussian", spiral: "Spiral",
                         moons: "Moons", blobs: "Blobs", plane: "Plane",
                         multigauss: "Multi-Gaussian"};
  const UNIT = 30, GAP = 8, TOP = 44, FEATURE_W = 72;

  const $ = (id) => document.getElementById(id);
  const app = {
    sid: null, options: null, limits: null, state: null, points: null, dataVersion: null,
    data: {dataset: "circle", noise: 0, classes: 2, ratio: 0.5, seed: 0, points: 400},
    model: {layers: [[4, "tanh"], [2, "tanh"]], features: ["x", "y"], loss: "cross_entropy",
            optimizer: "adam", lr: 0.03, batch_size: 10, l2: 0, dropout: 0, seed: 0},
    edits: [], upload: false, addClass: 0, busy: 0, drag: null, polling: false,
    modelPending: 0, dataPending: 0,
  };
  window.fastnnPlayground = app; // for the browser tests and the curious

  // -- talking to the server ---------------------------------------------------------------
  async function api(path, options) {
    options = options || {};
    const headers = Object.assign({"X-Playground-Token": TOKEN}, options.headers || {});
    let body = options.body;
    if (body !== undefined && !(body instanceof Blob) && typeof body !== "string") {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(body);
    }
    const response = await fetch(path, {method: options.method || (body ? "POST" : "GET"),
                                        headers, body, cache: "no-store"});
    if (!response.ok) {
      const text = await response.text();
      let message = text;
      try { message = JSON.parse(text).error || text; } catch (e) { /* plain text */ }
      const err = new Error(message);
      err.status = response.status;
      throw err;
    }
    return options.raw ? response : response.json();
  }

  const session = (tail) => `/api/sessions/${app.sid}/${tail}`;

  async function post(tail, body) {
    app.busy++;
    try {
      const state = await api(session(tail), {body: body || {}});
      if (state && state.session) show(state);
      return state;
    } catch (err) {
      if (err.status === 404) { await reconnect(); return null; }
      say(err.message, "error");
      throw err;
    } finally {
      app.busy--;
    }
  }

  async function start() {
    readHash();
    const wanted = {data: app.data, edits: app.edits, model: app.model};
    buildControls();
    say("connecting\u2026", "info");
    try {
      const created = await api("/api/sessions", {body: {}});
      app.options = created.options;
      app.limits = created.limits;
      app.sid = created.state.session;
      buildDatasets();
      show(created.state);
    } catch (err) {
      say(err.message, "error");
      return;
    }
    say("", "");
    Object.assign(app, wanted);
    await applySetup();
    document.body.dataset.ready = "true";   // the link's setup is applied
    if (!app.polling) poll();
  }

  async function reconnect() {
    // The session expired (the page slept, or the server restarted): open a new one with the
    // same setup.
    const wanted = {data: app.data, edits: app.edits, model: app.model};
    try {
      const created = await api("/api/sessions", {body: {}});
      app.sid = created.state.session;
      app.dataVersion = null;
      show(created.state);
      Object.assign(app, wanted);
      await applySetup();
      say("the session had expired: a new one was opened with the same setup", "info");
    } catch (err) {
      say(err.message, "error");
    }
  }

  async function applySetup() {
    const model = app.model;   // (showing the data's answer sets app.model to the server's)
    try {
      if (!app.upload) await post("data", Object.assign({}, app.data, {edits: app.edits}));
      await post("model", model);
    } catch (err) { /* shown by post */ }
  }

  async function poll() {
    app.polling = true;
    for (;;) {
      const running = app.state && app.state.status === "running";
      await sleep(running ? 150 : 800);
      if (!app.sid || app.busy) continue;
      try {
        const known = app.dataVersion === null ? "" : `?data=${app.dataVersion}`;
        show(await api(session("state" + known)));
      } catch (err) {
        if (err.status === 404) await reconnect();
        else if (err.status) say(err.message, "error");
        else say("the playground server is not answering (was it stopped?)", "error");
      }
    }
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function closeSession() {
    if (!app.sid) return;
    fetch(session("close") + `?token=${encodeURIComponent(TOKEN)}`,
          {method: "POST", keepalive: true, headers: {"X-Playground-Token": TOKEN}});
  }

  // -- the state, drawn ----------------------------------------------------------------------
  function show(state) {
    app.state = state;
    if (state.points) {
      app.points = state.points;
      app.dataVersion = state.data_version;
      app.upload = state.points.source === "upload";
    }
    if (!app.upload && state.data && !app.dataPending) {
      const d = state.data;
      app.data = {dataset: d.dataset, noise: d.noise, classes: d.classes || 2, ratio: d.ratio,
                  seed: d.seed, points: d.points};
    }
    app.edits = state.edits || [];
    if (!app.modelPending) app.model = state.model;
    $("epoch").textContent = String(state.epoch).padStart(6, "0");
    $("speed").textContent = state.status === "running" && state.epochs_per_s
      ? `${state.epochs_per_s} epochs/s` : "\u2013";
    $("play-icon").setAttribute("d", state.status === "running" ? "M6 5h4v14H6zM14 5h4v14h-4z" : "M8 5v14l11-7z");
    $("play").setAttribute("aria-label", state.status === "running" ? "pause" : "play");
    document.body.dataset.status = state.status;
    if (state.message) say(state.message, /diverged|stopped:|too|must|needs|single/.test(state.message) ? "error" : "info");
    else if ($("message").dataset.source === "server") say("", "");
    if (state.message) $("message").dataset.source = "server";
    syncControls();
    drawScores(state.scores);
    drawCurves(state.history);
    drawOutput();
    drawNetwork();
    const onnx = state.onnx || {ok: true};
    $("download-onnx").disabled = !onnx.ok;
    $("download-onnx").title = onnx.ok ? "The trained network as ONNX" : onnx.why;
    writeHash();
  }

  function say(text, kind) {
    const box = $("message");
    box.textContent = text;
    box.className = text ? kind : "";
    box.dataset.source = "";
  }

  const fmt = (v, digits) => (v === null || v === undefined) ? "\u2013" : v.toFixed(digits);

  function drawScores(scores) {
    scores = scores || {};
    $("test-loss").textContent = fmt(scores.test_loss, 3);
    $("train-loss").textContent = fmt(scores.train_loss, 3);
    const p = app.points, regression = Boolean(p && p.regression);
    $("accuracy-label").hidden = $("test-accuracy").hidden = regression;
    $("test-accuracy").textContent = scores.test_accuracy === null || scores.test_accuracy === undefined
      ? "\u2013" : `${(100 * scores.test_accuracy).toFixed(1)} %`;
    if (p) {
      const test = p.test.reduce((a, b) => a + b, 0);
      $("point-count").textContent = `${p.count} (${p.count - test} training, ${test} test)`;
    }
  }

  function drawCurves(history) {
    const c = $("curves"), g = c.getContext("2d");
    g.clearRect(0, 0, c.width, c.height);
    if (!history || history.epoch.length < 2) return;
    const values = history.train.concat(history.test).filter((v) => v !== null && isFinite(v));
    if (!values.length) return;
    const top = Math.max(...values) * 1.05 || 1;
    const last = history.epoch[history.epoch.length - 1] || 1;
    const xy = (e, v) => [4 + (c.width - 8) * e / last, c.height - 4 - (c.height - 8) * v / top];
    for (const [key, color] of [["train", "#999"], ["test", "#000"]]) {
      g.beginPath();
      g.strokeStyle = color;
      g.lineWidth = 1.5;
      let started = false;
      history.epoch.forEach((e, i) => {
        const v = history[key][i];
        if (v === null || !isFinite(v)) return;
        const [x, y] = xy(e, v);
        if (started) g.lineTo(x, y); else { g.moveTo(x, y); started = true; }
      });
      g.stroke();
    }
  }

  function bytes(b64) {
    const s = atob(b64), out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }

  function hexRgb(hex) {
    const n = parseInt(hex.slice(1), 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }

  function mix(rgb, t) { // white to rgb by t in [0, 1]
    return rgb.map((c) => Math.round(255 + (c - 255) * t));
  }

  function diverging(s) { // s in [-1, 1]: orange (negative), white, blue (positive)
    return s < 0 ? mix(LABEL_RGB[0], -s) : mix(LABEL_RGB[1], s);
  }

  function paintGrid(canvas, n, colorAt) {
    const g = canvas.getContext("2d");
    const img = g.createImageData(n, n);
    for (let i = 0; i < n * n; i++) {
      const [r, gg, b] = colorAt(i);
      img.data.set([r, gg, b, 255], 4 * i);
    }
    const off = document.createElement("canvas");
    off.width = off.height = n;
    off.getContext("2d").putImageData(img, 0, 0);
    g.imageSmoothingEnabled = !$("discretize").checked;
    g.drawImage(off, 0, 0, canvas.width, canvas.height);
  }

  function drawOutput() {
    const canvas = $("output"), g = canvas.getContext("2d");
    const view = app.state && app.state.view;
    g.fillStyle = "#fff";
    g.fillRect(0, 0, canvas.width, canvas.height);
    if (view) {
      const r = view.region;
      if (r.kind === "classes") {
        const label = bytes(r.label), conf = bytes(r.confidence);
        const sharp = $("discretize").checked;
        paintGrid(canvas, r.n, (i) => mix(LABEL_RGB[label[i] % 5], sharp ? 0.55 : 0.65 * conf[i] / 255));
      } else {
        const value = bytes(r.value);
        paintGrid(canvas, r.n, (i) => diverging(0.7 * (2 * value[i] / 255 - 1)));
      }
    }
    drawAxes(g, canvas);
    const p = app.points;
    if (!p) return;
    const showTest = $("show-test").checked;
    for (let i = 0; i < p.count; i++) {
      const test = p.test[i] === 1;
      if (test && !showTest) continue;
      const [px, py] = toPixel(p.x[i], p.y[i]);
      g.beginPath();
      g.arc(px, py, 3.5, 0, 2 * Math.PI);
      g.fillStyle = p.regression ? rgbText(diverging(p.label[i])) : COLORS[p.label[i] % 5];
      g.fill();
      g.lineWidth = test ? 1.2 : 0.8;
      g.strokeStyle = test ? "#000" : "#fff";
      g.stroke();
    }
  }

  function drawAxes(g, canvas) {
    g.strokeStyle = "rgba(0,0,0,.15)";
    g.lineWidth = 1;
    g.beginPath();
    g.moveTo(canvas.width / 2, 0); g.lineTo(canvas.width / 2, canvas.height);
    g.moveTo(0, canvas.height / 2); g.lineTo(canvas.width, canvas.height / 2);
    g.stroke();
  }

  const rgbText = (rgb) => `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;
  const extent = () => (app.state && app.state.view ? app.state.view.region.extent : 6);

  function toPixel(x, y) {
    const c = $("output"), e = extent();
    return [(x + e) / (2 * e) * c.width, (e - y) / (2 * e) * c.height];
  }

  function fromPixel(px, py) {
    const c = $("output"), e = extent();
    return [px / c.width * 2 * e - e, e - py / c.height * 2 * e];
  }

  // -- the network ---------------------------------------------------------------------------
  function featureValue(name, x, y) {
    return {x, y, x2: x * x, y2: y * y, xy: x * y, sinx: Math.sin(x), siny: Math.sin(y)}[name];
  }

  function drawNetwork() {
    const box = $("network");
    const model = app.model, view = app.state && app.state.view;
    const weights = (app.state && app.state.weights) || [];
    const features = app.options ? app.options.features : Object.keys(FEATURE_NAMES);
    const nOut = app.points ? (app.points.regression ? 1 : app.points.classes.length) : 2;
    const columns = [features.length].concat(model.layers.map((l) => l[0]), [nOut]);
    const width = Math.max(box.clientWidth, 360);
    const step = (width - FEATURE_W - UNIT - 10) / (columns.length - 1);
    const colX = (c) => FEATURE_W + c * step;
    const rowY = (r) => TOP + r * (UNIT + GAP);
    const height = TOP + Math.max(...columns) * (UNIT + GAP) + 10;
    box.style.height = `${height}px`;
    box.replaceChildren();

    // links: the weights, from each used input (or unit) to each unit of the next column
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    box.appendChild(svg);
    const rowsOf = [features.map((f, i) => (model.features.includes(f) ? i : -1)).filter((i) => i >= 0)]
      .concat(columns.slice(1).map((n) => [...Array(n).keys()]));
    weights.forEach((w, layer) => {
      const from = rowsOf[layer], to = rowsOf[layer + 1];
      if (!from || !to || w.length !== from.length || (w[0] && w[0].length !== to.length)) return;
      w.forEach((row, i) => row.forEach((value, j) => {
        const line = document.createElementNS("http://www.w3.org/2000/svg", "line");
        line.setAttribute("x1", colX(layer) + UNIT);
        line.setAttribute("y1", rowY(from[i]) + UNIT / 2);
        line.setAttribute("x2", colX(layer + 1));
        line.setAttribute("y2", rowY(to[j]) + UNIT / 2);
        line.setAttribute("stroke", value >= 0 ? COLORS[1] : COLORS[0]);
        line.setAttribute("stroke-width", Math.min(5, 0.3 + 1.5 * Math.abs(value)).toFixed(2));
        line.setAttribute("stroke-opacity", Math.min(0.9, 0.15 + 0.5 * Math.abs(value)).toFixed(2));
        const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
        title.textContent = `weight ${value}`;
        line.appendChild(title);
        svg.appendChild(line);
      }));
    });

    // inputs: the features, each with its heatmap and a checkbox
    const n = view ? view.unit_n : 20;
    const e = extent();
    features.forEach((name, i) => {
      const label = document.createElement("label");
      label.className = "feature";
      label.style.left = `${colX(0) - FEATURE_W}px`;
      label.style.top = `${rowY(i) + 7}px`;
      const check = document.createElement("input");
      check.type = "checkbox";
      check.checked = model.features.includes(name);
      check.dataset.feature = name;
      check.title = `use ${FEATURE_NAMES[name]} as an input`;
      check.addEventListener("change", () => {
        const chosen = features.filter((f) => (f === name ? check.checked : model.features.includes(f)));
        if (!chosen.length) { check.checked = true; say("the network needs at least one input", "error"); return; }
        setModel({features: chosen});
      });
      label.append(FEATURE_NAMES[name], check);
      box.appendChild(label);
      const canvas = unitCanvas(box, colX(0), rowY(i), `input ${FEATURE_NAMES[name]}`);
      const values = [];
      for (let k = 0; k < n * n; k++) {
        const x = ((k % n) + 0.5) / n * 2 * e - e, y = e - (Math.floor(k / n) + 0.5) / n * 2 * e;
        values.push(featureValue(name, x, y));
      }
      const top = Math.max(...values.map(Math.abs)) || 1;
      paintGrid(canvas, n, (k) => diverging(values[k] / top));
      if (!check.checked) canvas.style.opacity = "0.35";
    });

    // hidden units: their heatmaps; a head per layer with its controls
    model.layers.forEach(([units, activation], l) => {
      const head = document.createElement("div");
      head.className = "layer-head";
      head.style.left = `${colX(l + 1) - 30}px`;
      head.style.width = `${UNIT + 60}px`;
      const minus = button("\u2212", `remove a unit from layer ${l + 1}`, () => setUnits(l, units - 1));
      const plus = button("+", `add a unit to layer ${l + 1}`, () => setUnits(l, units + 1));
      minus.dataset.layer = plus.dataset.layer = l;
      minus.className = "unit-minus"; plus.className = "unit-plus";
      const count = document.createElement("span");
      count.className = "units";
      count.textContent = ` ${units} `;
      const select = document.createElement("select");
      select.className = "activation";
      select.dataset.layer = l;
      for (const a of (app.options ? app.options.activations : ["tanh"])) {
        select.add(new Option({tanh: "tanh", sigmoid: "sigmoid", relu: "ReLU", leaky_relu: "leaky ReLU"}[a], a));
      }
      select.value = activation;
      select.title = `activation of hidden layer ${l + 1}`;
      select.addEventListener("change", () => {
        const layers = model.layers.map((x) => x.slice());
        layers[l][1] = select.value;
        setModel({layers});
      });
      head.append(minus, count, plus, document.createElement("br"), select);
      box.appendChild(head);
      const maps = view && view.units[l];
      for (let j = 0; j < units; j++) {
        const canvas = unitCanvas(box, colX(l + 1), rowY(j), `layer ${l + 1}, unit ${j + 1}`);
        if (maps && maps.maps[j]) {
          const q = bytes(maps.maps[j]), lo = maps.lo, hi = maps.hi;
          const scale = lo < 0 ? Math.max(-lo, hi) : 0;
          paintGrid(canvas, n, (k) => {
            const v = lo + (hi - lo) * q[k] / 255;
            return diverging(scale ? v / scale : 2 * q[k] / 255 - 1);
          });
        }
      }
    });

    // outputs
    for (let j = 0; j < nOut; j++) {
      const out = document.createElement("div");
      out.className = "out";
      out.style.left = `${colX(columns.length - 1)}px`;
      out.style.top = `${rowY(j) + 5}px`;
      out.style.width = out.style.height = `${UNIT - 10}px`;
      out.style.background = nOut === 1 ? "linear-gradient(#0877bd, #fff, #f59322)" : COLORS[j % 5];
      out.title = nOut === 1 ? "output: the regression target" : `output: class ${app.points.classes[j]}`;
      box.appendChild(out);
    }
    $("layer-count").textContent = model.layers.length;
    const sizes = [model.features.length].concat(model.layers.map((l) => l[0]), [nOut]);
    let count = 0;
    for (let i = 1; i < sizes.length; i++) count += (sizes[i - 1] + 1) * sizes[i];
    $("param-count").textContent = `${count} parameters`;
    $("add-layer").disabled = app.limits && model.layers.length >= app.limits.max_layers;
    $("remove-layer").disabled = model.layers.length === 0;
  }

  function unitCanvas(box, x, y, title) {
    const c = document.createElement("canvas");
    c.className = "unit";
    c.width = c.height = UNIT;
    c.style.left = `${x}px`;
    c.style.top = `${y}px`;
    c.title = title;
    box.appendChild(c);
    return c;
  }

  function button(text, title, onClick) {
    const b = document.createElement("button");
    b.textContent = text;
    b.title = title;
    b.setAttribute("aria-label", title);
    b.addEventListener("click", onClick);
    return b;
  }

  function setUnits(l, units) {
    const most = app.limits ? app.limits.max_units : 16;
    if (units < 1 || units > most) return;
    const layers = app.model.layers.map((x) => x.slice());
    layers[l][0] = units;
    setModel({layers});
  }

  // Changes go to the server one at a time, in order; the page shows a change at once (a
  // second click builds on the first) and the server's answer once nothing is pending.
  let queue = Promise.resolve();
  function enqueue(task) {
    const done = queue.then(task, task);
    queue = done.catch(() => {});
    return done;
  }

  function setModel(change) {
    const next = Object.assign({}, app.model, change);
    app.model = next;
    app.modelPending++;
    drawNetwork();
    return enqueue(() => post("model", next)).catch(() => {})
      .finally(() => { app.modelPending--; if (!app.modelPending) show(app.state); });
  }

  function setData(change, keepEdits) {
    const next = Object.assign({}, app.data, change);
    app.data = next;
    app.dataPending++;
    return enqueue(() => post("data", Object.assign({}, next, {edits: keepEdits ? app.edits : []})))
      .catch(() => {})
      .finally(() => { app.dataPending--; if (!app.dataPending) show(app.state); });
  }

  function send(tail, body) {
    return enqueue(() => post(tail, body)).catch(() => {});
  }

  // -- the controls --------------------------------------------------------------------------
  function fillSelect(select, values, format) {
    for (const v of values) select.add(new Option(format ? format(v) : String(v), String(v)));
  }

  function buildControls() {
    fillSelect($("lr"), LRS);
    fillSelect($("l2"), L2S);
    fillSelect($("dropout"), DROPOUTS);
    fillSelect($("batch_size"), BATCHES);
    for (const key of ["lr", "l2", "dropout", "batch_size"]) {
      $(key).addEventListener("change", () => setModel({[key]: Number($(key).value)}));
    }
    for (const key of ["optimizer", "loss"]) {
      $(key).addEventListener("change", () => setModel({[key]: $(key).value}));
    }
    $("add-layer").addEventListener("click", () => {
      const layers = app.model.layers.map((x) => x.slice());
      const last = layers.length ? layers[layers.length - 1] : [4, "tanh"];
      layers.push([Math.min(last[0], 4) || 4, last[1]]);
      setModel({layers});
    });
    $("remove-layer").addEventListener("click", () => setModel({layers: app.model.layers.slice(0, -1)}));
    $("play").addEventListener("click", () => send("control", {action: app.state && app.state.status === "running" ? "pause" : "play"}));
    $("step").addEventListener("click", () => send("control", {action: "step"}));
    $("reset").addEventListener("click", () => send("control", {action: "reset"}));
    const slider = (id, key, scale) => {
      $(id).addEventListener("input", () => label());
      $(id).addEventListener("change", () => setData({[key]: Number($(id).value) / scale}, false));
    };
    slider("classes", "classes", 1);
    slider("ratio", "ratio", 100);
    slider("noise", "noise", 100);
    slider("points", "points", 1);
    $("regenerate").addEventListener("click", () => setData({seed: (app.data.seed + 1) % 2147483647}, false));
    for (const b of $("problem").querySelectorAll("button")) {
      b.addEventListener("click", () => {
        const regression = b.dataset.problem === "regression";
        if (regression === Boolean(app.points && app.points.regression) && !app.upload) return;
        setData({dataset: regression ? "plane" : "circle"}, false);
      });
    }
    $("add-target").addEventListener("input", label);
    $("show-test").addEventListener("change", drawOutput);
    $("discretize").addEventListener("change", () => { drawOutput(); drawNetwork(); });
    $("upload").addEventListener("change", uploadFile);
    for (const [id, kind] of [["download-model", "model"], ["download-onnx", "onnx"], ["download-python", "python"]]) {
      $(id).addEventListener("click", () => download(kind));
    }
    $("copy-link").addEventListener("click", async () => {
      writeHash();
      try {
        await navigator.clipboard.writeText(location.href);
        say("link copied: it opens this setup (the part after # works with any launch's URL)", "info");
      } catch (err) {
        say("copy the address bar: the part after # holds this setup", "info");
      }
    });
    const canvas = $("output");
    canvas.addEventListener("pointerdown", pointerDown);
    canvas.addEventListener("pointermove", pointerMove);
    canvas.addEventListener("pointerup", pointerUp);
    window.addEventListener("pagehide", closeSession);
    window.addEventListener("resize", drawNetwork);
    label();
  }

  function buildDatasets() {
    const box = $("datasets");
    box.replaceChildren();
    for (const name of app.options.classification.concat(app.options.regression)) {
      const b = document.createElement("button");
      b.textContent = DATASET_NAMES[name] || name;
      b.dataset.dataset = name;
      b.addEventListener("click", () => setData({dataset: name}, false));
      box.appendChild(b);
    }
  }

  function label() {
    $("classes-value").textContent = $("classes").value;
    $("ratio-value").textContent = `${$("ratio").value} %`;
    $("noise-value").textContent = $("noise").value;
    $("points-value").textContent = $("points").value;
    $("add-target-value").textContent = (Number($("add-target").value) / 100).toFixed(2);
  }

  function syncControls() {
    const m = app.model, d = app.data, p = app.points;
    const regression = Boolean(p && p.regression);
    for (const key of ["lr", "l2", "dropout", "batch_size", "optimizer", "loss"]) {
      const el = $(key);
      if (![...el.options].some((o) => o.value === String(m[key]))) el.add(new Option(String(m[key]), String(m[key])));
      el.value = String(m[key]);
    }
    $("loss").disabled = regression;
    for (const b of $("problem").querySelectorAll("button")) {
      b.classList.toggle("on", (b.dataset.problem === "regression") === regression);
    }
    for (const b of $("datasets").querySelectorAll("button")) {
      const fits = app.options && app.options[regression ? "regression" : "classification"].includes(b.dataset.dataset);
      b.hidden = !fits;
      b.classList.toggle("on", !app.upload && b.dataset.dataset === d.dataset);
    }
    const twoOnly = app.options && app.options.two_class_only.includes(d.dataset);
    $("classes").disabled = regression || twoOnly || app.upload;
    if (document.activeElement !== $("classes")) $("classes").value = p && !regression ? p.classes.length : d.classes;
    if (document.activeElement !== $("ratio")) $("ratio").value = Math.round(d.ratio * 100);
    if (document.activeElement !== $("noise")) $("noise").value = Math.round(d.noise * 100);
    if (document.activeElement !== $("points")) $("points").value = d.points;
    for (const id of ["noise", "points", "regenerate"]) $(id).disabled = app.upload;
    label();
    // the classes a click adds
    const box = $("add-class");
    const names = p && !regression ? p.classes : [];
    if (box.dataset.names !== names.join("\u0000")) {
      box.replaceChildren();
      names.forEach((name, i) => {
        const b = document.createElement("button");
        b.dataset.class = i;
        b.innerHTML = `<span class="swatch" style="background:${COLORS[i % 5]}"></span>`;
        b.append(name);
        b.addEventListener("click", () => { app.addClass = i; syncControls(); });
        box.appendChild(b);
      });
      box.dataset.names = names.join("\u0000");
      if (app.addClass >= names.length) app.addClass = 0;
    }
    for (const b of box.querySelectorAll("button")) b.classList.toggle("on", Number(b.dataset.class) === app.addClass);
    $("add-target-control").hidden = !regression;
  }

  // -- points: click to add, drag to delete --------------------------------------------------
  function canvasPoint(event) {
    const r = $("output").getBoundingClientRect();
    return [(event.clientX - r.left) * $("output").width / r.width,
            (event.clientY - r.top) * $("output").height / r.height];
  }

  function pointerDown(event) {
    $("output").setPointerCapture(event.pointerId);
    app.drag = {start: canvasPoint(event), now: canvasPoint(event)};
  }

  function pointerMove(event) {
    if (!app.drag) return;
    app.drag.now = canvasPoint(event);
    const [x0, y0] = app.drag.start, [x1, y1] = app.drag.now;
    const sel = $("selection");
    if (Math.hypot(x1 - x0, y1 - y0) < 5) { sel.style.display = "none"; return; }
    const r = $("output").getBoundingClientRect(), s = r.width / $("output").width;
    Object.assign(sel.style, {display: "block", left: `${Math.min(x0, x1) * s + 1}px`,
                              top: `${Math.min(y0, y1) * s + 1}px`,
                              width: `${Math.abs(x1 - x0) * s}px`, height: `${Math.abs(y1 - y0) * s}px`});
  }

  function pointerUp(event) {
    if (!app.drag) return;
    const [x0, y0] = app.drag.start, [x1, y1] = canvasPoint(event);
    app.drag = null;
    $("selection").style.display = "none";
    const e = extent(), clip = (v) => Math.max(-e, Math.min(e, Math.round(v * 1000) / 1000));
    let edit;
    if (Math.hypot(x1 - x0, y1 - y0) < 5) {
      const [x, y] = fromPixel(x1, y1);
      const regression = app.points && app.points.regression;
      edit = {add: [clip(x), clip(y), regression ? Number($("add-target").value) / 100 : app.addClass]};
    } else {
      const [a, b] = fromPixel(x0, y0), [c, d] = fromPixel(x1, y1);
      edit = {delete: [clip(a), clip(b), clip(c), clip(d)]};
    }
    send("points", {edits: [edit]});
  }

  // -- data of the user's own ----------------------------------------------------------------
  async function uploadFile() {
    const file = $("upload").files[0];
    if (!file) return;
    const most = 1024 * 1024;
    if (file.size > most) { say(`the file is too large: the playground takes CSV files up to ${most / 1024} KiB`, "error"); return; }
    const regression = Boolean(app.points && app.points.regression);
    app.busy++;
    try {
      const state = await api(session(`upload?mode=${regression ? "regression" : "classification"}`),
                              {body: file, headers: {"Content-Type": "text/csv"}});
      show(state);
      say(`${file.name}: ${state.points.count} points` + (regression ? "" : `, classes ${state.points.classes.join(", ")}`), "info");
    } catch (err) {
      say(`${file.name}: ${err.message}`, "error");
    } finally {
      app.busy--;
      $("upload").value = "";
    }
  }

  // -- taking it home ------------------------------------------------------------------------
  async function download(kind) {
    try {
      const response = await api(session(`export/${kind}`), {raw: true});
      const blob = await response.blob();
      const match = /filename="([^"]+)"/.exec(response.headers.get("content-disposition") || "");
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = match ? match[1] : `playground_model.${kind}`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    } catch (err) {
      say(err.message, "error");
    }
  }

  // -- the setup in the URL (after '#', so it never reaches the server's logs) -------------------
  function writeHash() {
    const m = app.model, d = app.data;
    const q = new URLSearchParams();
    if (app.upload) q.set("data", "upload");
    else {
      for (const k of ["dataset", "noise", "classes", "ratio", "seed", "points"]) q.set(k, d[k]);
      if (app.edits.length) q.set("edits", app.edits.map((e) => ("add" in e ? "a" + e.add.join(",") : "d" + e.delete.join(","))).join(";"));
    }
    q.set("layers", m.layers.map((l) => `${l[0]}${l[1]}`).join(","));
    q.set("features", m.features.join(","));
    for (const k of ["loss", "optimizer", "lr", "batch_size", "l2", "dropout"]) q.set(k, m[k]);
    q.set("model_seed", m.seed);
    const hash = "#" + q.toString();
    if (location.hash !== hash) history.replaceState(null, "", location.pathname + location.search + hash);
  }

  function readHash() {
    const q = new URLSearchParams(location.hash.slice(1));
    if (![...q.keys()].length) return;
    const num = (k, into, key) => { if (q.has(k) && q.get(k) !== "" && isFinite(Number(q.get(k)))) into[key || k] = Number(q.get(k)); };
    if (q.get("data") === "upload") {
      app.pendingMessage = "this link's data was an uploaded file: upload it again";
    } else {
      if (q.has("dataset")) app.data.dataset = q.get("dataset");
      for (const k of ["noise", "classes", "ratio", "seed", "points"]) num(k, app.data);
      if (q.get("edits")) {
        app.edits = q.get("edits").split(";").map((s) => {
          const v = s.slice(1).split(",").map(Number);
          return s[0] === "a" ? {add: v} : {delete: v};
        });
      }
    }
    if (q.has("layers")) {
      app.model.layers = q.get("layers") === "" ? [] : q.get("layers").split(",").map((s) => {
        const m = /^(\d+)([a-z_]+)$/.exec(s);
        return m ? [Number(m[1]), m[2]] : [4, "tanh"];
      });
    }
    if (q.has("features")) app.model.features = q.get("features").split(",").filter(Boolean);
    for (const k of ["loss", "optimizer"]) if (q.has(k)) app.model[k] = q.get(k);
    for (const k of ["lr", "batch_size", "l2", "dropout"]) num(k, app.model);
    num("model_seed", app.model, "seed");
  }

  window.addEventListener("DOMContentLoaded", () => {
    start().then(() => { if (app.pendingMessage) say(app.pendingMessage, "info"); });
  });
})();
