// Interactive neighbourhood graph (cytoscape.js, vendored). Progressive: the entity page lists the
// same relations as links without JavaScript. Click a node to expand its neighbours; double-click
// (or use the panel's link) to open its page.
(function () {
  "use strict";

  const palette = ["#4f46e5", "#0284c7", "#059669", "#d97706", "#db2777", "#7c3aed", "#0891b2", "#65a30d"];
  // The same type gets the same colour on every page (a hash of its name), so the legend holds.
  function colourFor(type) {
    let h = 0;
    for (const ch of String(type)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return palette[h % palette.length];
  }

  function make(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function day(value) {
    return value ? String(value).slice(0, 10) : "";
  }

  function style(dark) {
    const ink = dark ? "#e7e9ee" : "#17181c";
    const line = dark ? "#3a3f4b" : "#c9ccd4";
    return [
      { selector: "node", style: {
        "background-color": "data(colour)", label: "data(label)", color: ink, "font-size": 11,
        "text-valign": "bottom", "text-margin-y": 4, width: "mapData(weight, 0, 20, 18, 44)",
        height: "mapData(weight, 0, 20, 18, 44)", "border-width": 2, "border-color": dark ? "#171a21" : "#fff",
        "text-background-color": dark ? "#0f1115" : "#fff", "text-background-opacity": 0.8,
        "text-background-padding": 2, "text-background-shape": "roundrectangle" } },
      { selector: "node.root", style: { "border-color": "#f59e0b", "border-width": 4 } },
      { selector: "node.expanded", style: { "border-style": "double" } },
      { selector: "node:selected", style: { "border-color": "#f43f5e", "border-width": 4 } },
      { selector: "edge", style: {
        width: 1.5, "line-color": line, "target-arrow-color": line, "target-arrow-shape": "triangle",
        "curve-style": "bezier", label: "data(label)", "font-size": 9, color: dark ? "#9aa0ae" : "#6b7080",
        "text-rotation": "autorotate", "text-background-color": dark ? "#0f1115" : "#fff",
        "text-background-opacity": 0.8 } },
    ];
  }

  function init(el) {
    if (typeof cytoscape !== "function") return;
    const theme = document.documentElement.dataset.theme;
    const dark = theme ? theme === "dark" : window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    // URLs rendered by Django for entity 0; the id is substituted per node.
    const at = (template, id) => template.replace("/0/", "/" + encodeURIComponent(id) + "/");
    const src = el.dataset.src; // "/entities/0/neighbors.json?depth=1"
    const link = el.dataset.link; // "/entities/0/"
    const panel = document.getElementById(el.dataset.panel || "");
    const legend = document.getElementById(el.dataset.legend || "");
    const relationSrc = el.dataset.relation; // "/graph/relations/0.json"
    const cy = cytoscape({ container: el, style: style(dark), wheelSensitivity: 0.3, minZoom: 0.2, maxZoom: 3 });
    const expanded = new Set();
    el.cy = cy;

    function relayout() {
      cy.layout({ name: "cose", animate: false, fit: true, padding: 30, nodeRepulsion: 9000, idealEdgeLength: 90 }).run();
      // A few nodes fitted to the box would be drawn huge and overlapping: cap the zoom.
      if (cy.zoom() > 1.2) {
        cy.zoom(1.2);
        cy.center();
      }
      el.dataset.nodes = String(cy.nodes().length);
      el.dataset.edges = String(cy.edges().length);
      drawLegend();
    }

    function drawLegend() {
      if (!legend) return;
      const types = [...new Set(cy.nodes().map((n) => n.data("type")))].sort();
      legend.replaceChildren(...types.map((type) => {
        const item = make("span", "legend-item");
        const swatch = make("span", "swatch");
        swatch.style.background = colourFor(type);
        item.append(swatch, document.createTextNode(type));
        return item;
      }));
    }

    function summarise(summary) {
      // Too large to draw: counts instead, so a hub never hangs the page.
      el.dataset.summary = "1";
      if (!panel) return;
      panel.replaceChildren();
      panel.append(make("strong", "panel-title", "Too large to draw"));
      panel.append(make("p", "", (summary.nodes ? summary.nodes + " entities, " : "") + summary.relations + " direct relations. Narrow it with a smaller depth, a relation type or an earlier date."));
      const lists = [["By relation", summary.by_predicate, "predicate"], ["Neighbours by type", summary.by_type, "type"]];
      for (const [title, rows, key] of lists) {
        panel.append(make("div", "panel-sub", title));
        const ul = make("ul", "summary-list");
        for (const row of rows) ul.append(make("li", "", row[key] + ": " + row.count));
        panel.append(ul);
      }
    }

    async function expand(id) {
      if (expanded.has(id)) return;
      expanded.add(id);
      el.classList.add("loading");
      try {
        const response = await fetch(at(src, id), { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (!response.ok) {
          if (panel) panel.textContent = (await response.json().catch(() => ({}))).error || "Could not load the neighbours.";
          return;
        }
        const data = await response.json();
        if (data.summary) summarise(data.summary);
        const add = [];
        for (const node of data.nodes) {
          if (cy.getElementById("n" + node.id).length) continue;
          add.push({ group: "nodes", data: { id: "n" + node.id, entity: node.id, label: node.name, type: node.type,
            weight: node.mention_count || 0, colour: colourFor(node.type), summary: node.summary || "" } });
        }
        for (const edge of data.edges) {
          if (cy.getElementById("e" + edge.id).length) continue;
          add.push({ group: "edges", data: { id: "e" + edge.id, relation: edge.id, source: "n" + edge.source,
            target: "n" + edge.target, label: edge.predicate, fact: edge.fact || "" } });
        }
        cy.add(add);
        cy.getElementById("n" + id).addClass("expanded");
        relayout();
      } finally {
        el.classList.remove("loading");
      }
    }

    function describe(node) {
      if (!panel) return;
      const d = node.data();
      panel.replaceChildren();
      const title = document.createElement("a");
      title.href = at(link, d.entity);
      title.textContent = d.label;
      title.className = "panel-title";
      const meta = document.createElement("div");
      meta.className = "muted small";
      meta.textContent = d.type + " · " + d.weight + " mention" + (d.weight === 1 ? "" : "s") + " · " + node.degree() + " relation" + (node.degree() === 1 ? "" : "s") + " shown";
      panel.append(title, meta);
      if (d.summary) {
        const p = document.createElement("p");
        p.textContent = d.summary;
        panel.append(p);
      }
    }

    cy.on("tap", "node", (event) => {
      const node = event.target;
      describe(node);
      expand(node.data("entity")).then(() => describe(node));
    });
    cy.on("dbltap", "node", (event) => { window.location.href = at(link, event.target.data("entity")); });
    async function describeRelation(edge) {
      if (!panel) return;
      const d = edge.data();
      panel.replaceChildren(make("strong", "panel-title", cy.getElementById(d.source).data("label") + " —" + d.label + "→ " + cy.getElementById(d.target).data("label")));
      if (d.fact) panel.append(make("p", "", d.fact));
      if (!relationSrc) return;
      const response = await fetch(relationSrc.replace("/0.json", "/" + encodeURIComponent(d.relation) + ".json"), { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) return;
      const data = await response.json();
      panel.append(make("div", "panel-sub", "Validity history"));
      const history = make("ol", "validity");
      for (const r of data.history) {
        const item = make("li", r.selected ? "selected" : "");
        const span = (day(r.valid_at) || "always") + " → " + (day(r.invalid_at) || (r.expired_at ? "retired " + day(r.expired_at) : "now"));
        item.append(make("span", "when", span), document.createTextNode(" " + r.target.name + (r.current ? " (current)" : "")));
        history.append(item);
      }
      panel.append(history);
      panel.append(make("div", "panel-sub", "Learned from"));
      const sources = make("ul", "sources");
      for (const m of data.source_memories) {
        const item = make("li");
        const a = make("a", "", m.content.length > 140 ? m.content.slice(0, 140) + "…" : m.content);
        a.href = m.url;
        item.append(a);
        sources.append(item);
      }
      if (!data.source_memories.length) sources.append(make("li", "muted", "no source memory (added by hand)"));
      panel.append(sources);
      panel.dataset.relation = String(d.relation);
    }

    cy.on("tap", "edge", (event) => { describeRelation(event.target); });

    const root = el.dataset.entity;
    expand(root).then(() => cy.getElementById("n" + root).addClass("root"));
  }

  document.addEventListener("DOMContentLoaded", () => document.querySelectorAll("[data-graph]").forEach(init));
})();
