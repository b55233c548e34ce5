// The job's flowchart, drawn as SVG from the Mermaid text the API answers (the format of
// formica.jobs.graph.to_mermaid): nodes `t0["label"]`, action nodes `a0(["FAILED"])`, edges
// `t0 -->|"label"| t1`. Drawn here rather than by the mermaid library: its SVG carries inline
// <style> elements, which the page's Content Security Policy (style-src 'self') refuses.
import { h, svg } from "./dom.js";

const NODE = /^\s*([A-Za-z][\w-]*)(\(\[|\[)"(.*)"(?:\]\)|\])\s*$/;
const EDGE = /^\s*([A-Za-z][\w-]*)\s*-->\s*(?:\|"(.*)"\|)?\s*([A-Za-z][\w-]*)\s*$/;
const ROOT = /^\s*style\s+([A-Za-z][\w-]*)\s+stroke-width:3px/;

function labelLines(raw) {
  // Labels are text: markup the generator adds (<br/>, <small>) is split or dropped, never parsed.
  return raw
    .replace(/#quot;/g, '"')
    .split(/<br\s*\/?>/i)
    .map((line) => line.replace(/<[^>]*>/g, "").trim())
    .filter(Boolean);
}

/** Nodes, edges and the root parsed from Mermaid text. */
export function parseMermaid(text) {
  const nodes = new Map();
  const edges = [];
  let root = null;
  for (const line of String(text).split("\n")) {
    let match = NODE.exec(line);
    if (match) {
      nodes.set(match[1], { id: match[1], lines: labelLines(match[3]), action: match[2] === "([" });
      continue;
    }
    match = EDGE.exec(line);
    if (match) {
      edges.push({ from: match[1], to: match[3], label: labelLines(match[2] || "").join(" ") });
      continue;
    }
    match = ROOT.exec(line);
    if (match) root = match[1];
  }
  return { nodes, edges, root: root || (nodes.size ? nodes.keys().next().value : null) };
}

function layers(graph) {
  // Depth by breadth-first walk from the root; back edges and loops do not push a node down.
  const depth = new Map();
  const queue = graph.root ? [graph.root] : [];
  if (graph.root) depth.set(graph.root, 0);
  while (queue.length) {
    const id = queue.shift();
    for (const edge of graph.edges) {
      if (edge.from === id && !depth.has(edge.to)) {
        depth.set(edge.to, depth.get(id) + 1);
        queue.push(edge.to);
      }
    }
  }
  let deepest = Math.max(0, ...depth.values());
  for (const id of graph.nodes.keys()) if (!depth.has(id)) depth.set(id, ++deepest);
  const rows = [];
  for (const id of graph.nodes.keys()) {
    const d = depth.get(id);
    (rows[d] ||= []).push(id);
  }
  return rows.filter(Boolean);
}

/**
 * The flowchart as an <svg>. `states` maps a node id to its task state (the request's walk);
 * `walked` is a set of "from->to" node id pairs the walk took (drawn thick).
 */
export function drawGraph(mermaidText, { states = new Map(), walked = new Set(), title = "Job graph" } = {}) {
  const graph = parseMermaid(mermaidText);
  const width = 170;
  const height = 46;
  const gapX = 40;
  const gapY = 64;
  const rows = layers(graph);
  const widest = Math.max(1, ...rows.map((row) => row.length));
  const totalWidth = widest * (width + gapX) + gapX;
  const position = new Map();
  rows.forEach((row, depth) => {
    const offset = (totalWidth - row.length * (width + gapX) + gapX) / 2;
    row.forEach((id, index) => {
      position.set(id, { x: offset + index * (width + gapX), y: 20 + depth * (height + gapY) });
    });
  });
  const totalHeight = rows.length * (height + gapY) + 20;
  const edges = graph.edges.map((edge) => {
    const from = position.get(edge.from);
    const to = position.get(edge.to);
    if (!from || !to) return null;
    const cls = walked.has(`${edge.from}->${edge.to}`) ? "edge walked" : "edge";
    if (edge.from === edge.to) {
      const x = from.x + width;
      const y = from.y + height / 2;
      return svg(
        "g",
        null,
        svg("path", { class: cls, d: `M${x} ${y - 10} c 34 -18 34 38 0 20`, "marker-end": "url(#arrow)" }),
        svg("text", { class: "edge-label", x: x + 30, y: y + 4 }, edge.label),
      );
    }
    const x1 = from.x + width / 2;
    const y1 = from.y + height;
    const x2 = to.x + width / 2;
    const y2 = to.y;
    const upward = y2 <= y1;
    const d = upward
      ? `M${x1} ${y1} C ${x1 + 90} ${y1 + 60}, ${x2 + 90} ${y2 - 60}, ${x2} ${y2}`
      : `M${x1} ${y1} L ${x2} ${y2}`;
    return svg(
      "g",
      null,
      svg("path", { class: cls, d, "marker-end": "url(#arrow)" }),
      svg("text", { class: "edge-label", x: (x1 + x2) / 2 + 6, y: (y1 + y2) / 2 }, edge.label),
    );
  });
  const nodes = [...graph.nodes.values()].map((node) => {
    const at = position.get(node.id);
    const state = states.get(node.id);
    const classes = ["node", node.action ? "action" : "task", node.id === graph.root ? "root" : ""];
    if (state && /^[A-Z_]+$/.test(state)) classes.push(`s-${state}`);
    const label = node.lines.join(", ") + (state ? `: ${state}` : "");
    return svg(
      "g",
      { class: classes.filter(Boolean).join(" "), "data-node": node.id, role: "listitem", "aria-label": label },
      svg("rect", { x: at.x, y: at.y, width, height, rx: node.action ? 22 : 6 }),
      node.lines.slice(0, 2).map((line, index) =>
        svg("text", { x: at.x + 10, y: at.y + 19 + index * 16 }, line.length > 26 ? line.slice(0, 25) + "…" : line),
      ),
      svg("title", null, label),
    );
  });
  return h(
    "div",
    { class: "graph" },
    svg(
      "svg",
      { width: totalWidth, height: totalHeight, viewBox: `0 0 ${totalWidth} ${totalHeight}`, role: "list", "aria-label": title },
      svg(
        "defs",
        null,
        svg(
          "marker",
          { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
          svg("path", { d: "M 0 0 L 10 5 L 0 10 z" }),
        ),
      ),
      edges,
      nodes,
    ),
  );
}
