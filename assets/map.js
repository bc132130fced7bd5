// BGE Explorer's map: draws the server's point payload with plotly.js (scattergl, WebGL) and reports clicks and
// lasso / box selections. Shared by the app (gr.HTML js_on_load) and the standalone HTML export.
// Payload: see bge_explorer/maps/points.py. Every text in it is HTML-escaped on the server; plotly shows it as text.
(function () {
  "use strict";
  const TYPES = {float32: Float32Array, uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array, int32: Int32Array};
  const SCALE = [[0, "#440154"], [0.25, "#3B528B"], [0.5, "#21918C"], [0.75, "#5EC962"], [1, "#FDE725"]];
  const NONE = "#D9D9D9";
  const MAX_LEGEND = 40;
  const FINE_ZOOM = 2.5;  // zoomed in this much (span of the full map / span in view): the fine cluster labels show

  function decode(array) {
    const bytes = Uint8Array.from(atob(array.b64), (c) => c.charCodeAt(0));
    return new TYPES[array.dtype](bytes.buffer);
  }

  function hex(c) { return [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16)); }

  function scaleColour(t) {
    for (let i = 1; i < SCALE.length; i++) {
      if (t <= SCALE[i][0]) {
        const [t0, c0] = SCALE[i - 1], [t1, c1] = SCALE[i];
        const f = (t - t0) / (t1 - t0), a = hex(c0), b = hex(c1);
        return "rgb(" + a.map((v, j) => Math.round(v + f * (b[j] - v))).join(",") + ")";
      }
    }
    return SCALE[SCALE.length - 1][1];
  }

  // per-point colours and the traces that explain them (legend entries or a colour bar; they hold no points)
  function colours(colour, n) {
    const out = new Array(n);
    const keys = [];
    if (colour.kind === "category") {
      const codes = decode(colour.codes);
      for (let i = 0; i < n; i++) out[i] = colour.colours[codes[i]];
      if (colour.names.length <= MAX_LEGEND) {
        colour.names.forEach((name, i) => keys.push({type: "scattergl", x: [null], y: [null], mode: "markers",
          name: name, marker: {color: colour.colours[i], size: 9}, hoverinfo: "skip"}));
      }
      return {out, keys};
    }
    const values = decode(colour.values);
    let lo = Infinity, hi = -Infinity;
    for (const v of values) if (!Number.isNaN(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    for (let i = 0; i < n; i++) {
      const v = values[i];
      out[i] = Number.isNaN(v) ? NONE : scaleColour(hi > lo ? (v - lo) / (hi - lo) : 0.5);
    }
    if (lo <= hi) {
      keys.push({type: "scattergl", x: [null], y: [null], mode: "markers", showlegend: false, hoverinfo: "skip",
        marker: {color: [lo, hi], colorscale: SCALE, showscale: true, colorbar: {title: {text: colour.title}}}});
    }
    return {out, keys};
  }

  // the server's HTML-escaped text (points.plain) back to plain text, for textContent
  const ENTITIES = {"&lt;": "<", "&gt;": ">", "&amp;": "&", "&#34;": '"', "&#x27;": "'"};
  function unescape(text) { return text.replace(/&(lt|gt|amp|#34|#x27);/g, (e) => ENTITIES[e]); }

  // the cluster list above the map: one button per coarse cluster (its keywords and size); a click selects its
  // chunks (as a lasso would) and zooms to them
  function clusterList(gd, p) {
    const list = gd.parentElement && gd.parentElement.querySelector(".bx-map-clusters");
    if (!list) return;
    list.replaceChildren();
    const coarse = (p.labels && p.labels.coarse) || [];
    list.hidden = !p.cluster || !coarse.length;
    if (list.hidden) return;
    const title = document.createElement("span");
    title.className = "bx-clusters-title";
    title.textContent = "Clusters (click to select):";
    list.appendChild(title);
    coarse.forEach((l) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "bx-cluster";
      button.dataset.cluster = String(l.cluster);
      button.textContent = unescape(l.text) + " (" + l.size + ")";
      button.addEventListener("click", () => selectCluster(gd, l.cluster));
      list.appendChild(button);
    });
  }

  function selectCluster(gd, cluster) {
    const st = gd._bxMap, x = gd.data[0].x, y = gd.data[0].y;
    const rows = [];
    st.cluster.forEach((c, i) => { if (c === cluster) rows.push(i); });
    if (!rows.length) return;
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const i of rows) {
      x0 = Math.min(x0, x[i]); x1 = Math.max(x1, x[i]); y0 = Math.min(y0, y[i]); y1 = Math.max(y1, y[i]);
    }
    const padX = (x1 - x0) * 0.15 || 0.5, padY = (y1 - y0) * 0.15 || 0.5;
    gd.parentElement.querySelectorAll(".bx-cluster").forEach((b) =>
      b.setAttribute("aria-pressed", String(b.dataset.cluster === String(cluster))));
    linking = true;  // the selection box cleared here is not a deselect
    return Promise.resolve(Plotly.relayout(gd, {selections: [], "xaxis.range": [x0 - padX, x1 + padX],
      "yaxis.range": [y0 - padY, y1 + padY]}))
      .then(() => Plotly.restyle(gd, {selectedpoints: [rows]}, [0]))
      .finally(() => { linking = false; gd._bxSelected(rows, {cluster: cluster}); });
  }

  function hovers(p) {
    const doc = decode(p.doc), chunk = decode(p.chunk);
    return Array.from({length: p.n}, (_, i) => "<b>" + p.docs[doc[i]] + "</b> · chunk " + chunk[i] + "<br>" + p.text[i]);
  }

  function marks(p, x, y, hover) {
    const traces = [];
    const q = p.query;
    if (p.matches && p.matches.length) {
      traces.push({type: "scattergl", mode: "markers", name: "matches “" + p.find + "” (" + p.matches.length + ")",
        x: p.matches.map((r) => x[r]), y: p.matches.map((r) => y[r]), text: p.matches.map((r) => hover[r]),
        hovertemplate: "%{text}<extra></extra>",
        marker: {size: 12, symbol: "square-open", color: "#FF7F0E", line: {width: 2}}});
    }
    if (p.near && p.near.length) {
      traces.push({type: "scattergl", mode: "markers", name: "nearest to “" + p.find + "” (" + p.near.length + ")",
        x: p.near.map((r) => x[r]), y: p.near.map((r) => y[r]),
        text: p.near.map((r, i) => "nearest #" + (i + 1) + "<br>" + hover[r]), hovertemplate: "%{text}<extra></extra>",
        marker: {size: 14, symbol: "triangle-up-open", color: "#2CA02C", line: {width: 2}}});
    }
    if (!q) return traces;
    const hits = q.retrieved.concat(q.reranked.filter((r) => !q.retrieved.includes(r)));
    const lx = [], ly = [];
    for (const r of hits) { lx.push(q.x, x[r], null); ly.push(q.y, y[r], null); }
    traces.push({type: "scattergl", mode: "lines", name: "query → hits", x: lx, y: ly, hoverinfo: "skip",
      line: {color: "rgba(90,90,90,0.45)", width: 1}});
    const rank = (list, r) => list.indexOf(r) + 1;
    const text = (r) => "retrieved #" + rank(q.retrieved, r) + (q.reranked.length ? ", reranked #" +
      (rank(q.reranked, r) || "—") : "") + "<br>" + hover[r];
    traces.push({type: "scattergl", mode: "markers", name: "retrieved top " + q.retrieved.length,
      x: q.retrieved.map((r) => x[r]), y: q.retrieved.map((r) => y[r]), text: q.retrieved.map(text),
      hovertemplate: "%{text}<extra></extra>", marker: {size: 13, symbol: "circle-open", color: "#111111", line: {width: 2}}});
    if (q.reranked.length) {
      traces.push({type: "scattergl", mode: "markers", name: "reranked top " + q.reranked.length,
        x: q.reranked.map((r) => x[r]), y: q.reranked.map((r) => y[r]), text: q.reranked.map(text),
        hovertemplate: "%{text}<extra></extra>", marker: {size: 16, symbol: "diamond-open", color: "#D62728", line: {width: 2}}});
    }
    traces.push({type: "scattergl", mode: "markers", name: "query", x: [q.x], y: [q.y], text: ["query: " + q.text],
      hovertemplate: "%{text}<extra></extra>",
      marker: {size: 20, symbol: "star", color: "#FFD700", line: {width: 1.5, color: "#000000"}}});
    return traces;
  }

  function annotations(labels) {
    return labels.map((l) => ({x: l.x, y: l.y, text: l.text, showarrow: false, bgcolor: "rgba(255,255,255,0.75)",
      bordercolor: "rgba(0,0,0,0.25)", borderpad: 2, font: {size: 12, color: "#222"}, captureevents: false}));
  }

  // coarse labels when the whole map is in view, fine ones (more clusters) once zoomed in
  function labelsFor(gd) {
    const st = gd._bxMap;
    if (!st || !st.labels) return [];
    const xr = gd._fullLayout.xaxis.range, yr = gd._fullLayout.yaxis.range;
    const zoom = Math.min(st.span[0] / Math.abs(xr[1] - xr[0]), st.span[1] / Math.abs(yr[1] - yr[0]));
    const fine = zoom >= FINE_ZOOM && st.labels.fine.length;
    const inView = (l) => l.x >= Math.min(...xr) && l.x <= Math.max(...xr) && l.y >= Math.min(...yr) && l.y <= Math.max(...yr);
    return annotations((fine ? st.labels.fine : st.labels.coarse).filter(inView));
  }

  function draw(gd, p, hooks) {
    hooks = hooks || {};
    const x = decode(p.x), y = decode(p.y);
    const hover = hovers(p);
    const {out, keys} = colours(p.colour, p.n);
    const points = {type: "scattergl", mode: "markers", name: p.n + " chunks", x: x, y: y, text: hover,
      hovertemplate: "%{text}<extra></extra>", showlegend: false,
      marker: {size: p.n > 20000 ? 3 : p.n > 2000 ? 5 : 7, color: out, opacity: 0.8},
      selected: {marker: {opacity: 1}}, unselected: {marker: {opacity: 0.15}}};
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < p.n; i++) { x0 = Math.min(x0, x[i]); x1 = Math.max(x1, x[i]); y0 = Math.min(y0, y[i]); y1 = Math.max(y1, y[i]); }
    if (p.query) { x0 = Math.min(x0, p.query.x); x1 = Math.max(x1, p.query.x); y0 = Math.min(y0, p.query.y); y1 = Math.max(y1, p.query.y); }
    const padX = (x1 - x0) * 0.05 || 1, padY = (y1 - y0) * 0.05 || 1;
    gd._bxMap = {labels: p.labels, span: [x1 - x0 + 2 * padX, y1 - y0 + 2 * padY], space: p.space,
      peer: p.peer ? decode(p.peer) : null, cluster: p.cluster ? decode(p.cluster) : null};
    if (p.space) spaces[p.space] = gd;
    const layout = {
      title: {text: p.title}, hovermode: "closest", dragmode: gd._fullLayout ? gd._fullLayout.dragmode : "pan",
      xaxis: {title: {text: p.axis + " 1"}, zeroline: false, range: [x0 - padX, x1 + padX]},
      yaxis: {title: {text: p.axis + " 2"}, zeroline: false, range: [y0 - padY, y1 + padY]},
      legend: {itemsizing: "constant", itemclick: false, itemdoubleclick: false, title: {text: p.colour.title}},
      margin: {l: 40, r: 10, t: 50, b: 40}, height: 640, plot_bgcolor: "#FFFFFF", paper_bgcolor: "#FFFFFF",
      annotations: [], uirevision: p.revision,
    };
    const config = {responsive: true, scrollZoom: true, displaylogo: false,
      modeBarButtonsToRemove: ["autoScale2d"], toImageButtonOptions: {format: "png", filename: "bge-explorer-map", scale: 2}};
    return Plotly.react(gd, [points, ...keys, ...marks(p, x, y, hover)], layout, config).then(() => {
      Plotly.relayout(gd, {annotations: labelsFor(gd)});
      clusterList(gd, p);
      if (gd._bxHooked) { gd._bxHooks = hooks; return gd; }
      gd._bxHooked = true;
      gd._bxHooks = hooks;
      gd.on("plotly_click", (e) => {
        const pt = e.points.find((q) => q.curveNumber === 0);
        const rows = pt ? toA(gd._bxMap, [pt.pointIndex]) : [];
        if (rows.length && gd._bxHooks.click) gd._bxHooks.click(rows[0]);
      });
      const selected = (rows, shape) => {
        if (linking) return;
        const aRows = toA(gd._bxMap, rows).sort((a, b) => a - b);
        if (gd._bxMap.space) linkTo(gd._bxMap.space === "a" ? "b" : "a", aRows);
        if (gd._bxHooks.select) gd._bxHooks.select(aRows, shape);
        if (!shape || shape.cluster === undefined) {
          gd.parentElement.querySelectorAll(".bx-cluster").forEach((b) => b.setAttribute("aria-pressed", "false"));
        }
      };
      gd._bxSelected = selected;
      gd.on("plotly_selected", (e) => {
        const rows = e ? e.points.filter((q) => q.curveNumber === 0).map((q) => q.pointIndex) : [];
        selected(rows, e && e.lassoPoints ? {lasso: e.lassoPoints} : e && e.range ? {box: e.range} : {});
      });
      gd.on("plotly_deselect", () => selected([], {}));
      gd.on("plotly_relayout", (e) => {
        if (e && Object.keys(e).some((k) => k.startsWith("xaxis") || k.startsWith("yaxis"))) {
          Plotly.relayout(gd, {annotations: labelsFor(gd)});
        }
      });
      return gd;
    });
  }

  // two spaces (a: the index, b: another model's map of the same chunks), selection linked by A's row numbers;
  // B's payload maps each of its rows to A's row (peer, -1: not in A)
  const spaces = {};
  let linking = false;

  function toA(st, rows) { return st.peer ? rows.map((j) => st.peer[j]).filter((r) => r >= 0) : rows; }

  function linkTo(space, aRows) {
    const other = spaces[space];
    if (!other || !other._bxMap || !other.isConnected) return;
    let rows = aRows;
    if (other._bxMap.peer) {
      const wanted = new Set(aRows);
      rows = [];
      other._bxMap.peer.forEach((r, j) => { if (wanted.has(r)) rows.push(j); });
    }
    // the other map's own selection box (layout.selections) would win over selectedpoints: clear it first,
    // and ignore the deselect event that may fire meanwhile
    linking = true;
    Promise.resolve(Plotly.relayout(other, {selections: []}))
      .then(() => Plotly.restyle(other, {selectedpoints: [aRows.length ? rows : null]}, [0]))
      .finally(() => { linking = false; });
  }

  function png(gd) {
    return Plotly.downloadImage(gd, {format: "png", filename: "bge-explorer-map", scale: 2, width: 1200, height: 760});
  }

  window.BxMap = {decode, draw, png, selectCluster};
})();
