// Interactive neighbourhood graph (cytoscape.js, vendored). Progressive: the entity page lists the
// same relations as links without JavaScript. Click a node to expand its neighbours; double-click
// (or use the panel's link) to open its page.
(function () {
  "use strict";

  const palette = ["#4f46e5", "#0284c7", "#059669", "#d97706", "#db2777", "#7c3aed", "#0891b2", "#65a30d"];
  const typeColour = {};
  function colourFor(type) {
    if (!(type in typeColour)) typeColour[type] = palette[Object.keys(typeColour).length % palette.length];
    return typeColour[type];
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
    const dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    // URLs rendered by Django for entity 0; the id is substituted per node.
    const at = (template, id) => template.replace("/0/", "/" + encodeURIComponent(id) + "/");
    const src = el.dataset.src; // "/entities/0/neighbors.json?depth=1"
    const link = el.dataset.link; // "/entities/0/"
    const panel = document.getElementById(el.dataset.panel || "");
    const cy = cytoscape({ container: el, style: style(dark), wheelSensitivity: 0.3, minZoom: 0.2, maxZoom: 3 });
    const expanded = new Set();
    el.cy = cy;

    function relayout() {
      cy.layout({ name: "cose", animate: false, fit: true, padding: 30, nodeRepulsion: 9000, idealEdgeLength: 90 }).run();
      el.dataset.nodes = String(cy.nodes().length);
      el.dataset.edges = String(cy.edges().length);
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
        const add = [];
        for (const node of data.nodes) {
          if (cy.getElementById("n" + node.id).length) continue;
          add.push({ group: "nodes", data: { id: "n" + node.id, entity: node.id, label: node.name, type: node.type,
            weight: node.mention_count || 0, colour: colourFor(node.type), summary: node.summary || "" } });
        }
        for (const edge of data.edges) {
          if (cy.getElementById("e" + edge.id).length) continue;
          add.push({ group: "edges", data: { id: "e" + edge.id, source: "n" + edge.source, target: "n" + edge.target,
            label: edge.predicate, fact: edge.fact || "" } });
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
    cy.on("tap", "edge", (event) => {
      if (!panel) return;
      const d = event.target.data();
      panel.textContent = cy.getElementById(d.source).data("label") + " —" + d.label + "→ " + cy.getElementById(d.target).data("label") + (d.fact ? ": " + d.fact : "");
    });

    const root = el.dataset.entity;
    expand(root).then(() => cy.getElementById("n" + root).addClass("root"));
  }

  document.addEventListener("DOMContentLoaded", () => document.querySelectorAll("[data-graph]").forEach(init));
})();
