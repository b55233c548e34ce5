// Building the page without ever parsing text as HTML: every string becomes a text node or an
// attribute value. Nothing here (nor anywhere in the dashboard) hands a string to an HTML parser
// or to a script evaluator (a test checks the files), and the Content Security Policy refuses
// inline script.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function setAttributes(node, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) {
      node.addEventListener(name.slice(2), value);
    } else if (name === "href" && !String(value).startsWith("#")) {
      throw new Error("the dashboard links only to its own pages");
    } else if (name === "value" || name === "checked" || name === "disabled" || name === "hidden") {
      node[name] = value;
      if (value === true) node.setAttribute(name, "");
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

/** An HTML element: h("td", {class: "mono"}, text, ...). */
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttributes(node, attrs);
  append(node, children);
  return node;
}

/** An SVG element, the same way. */
export function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttributes(node, attrs);
  append(node, children);
  return node;
}

/** Replace an element's content. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** A status message in the live region (role=status): kind "ok" or "error". */
export function say(text, kind = "ok") {
  const region = document.getElementById("status");
  fill(region, h("p", { class: kind }, text));
}

export function clearStatus() {
  fill(document.getElementById("status"));
}

/** A job or task state as a badge. */
export function stateBadge(state) {
  const value = state || "NOT RUN";
  return h("span", { class: `state state-${/^[A-Z_]+$/.test(value) ? value : "OTHER"}` }, value);
}

/** An ISO-8601 time as the user's local time, with the exact value as its title. */
export function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "-");
  const date = new Date(iso);
  return h("time", { datetime: iso, title: iso }, Number.isNaN(date.getTime()) ? iso : date.toLocaleString());
}

/** Seconds between two ISO times (the second defaults to now), as "1h 2m 3s". */
export function duration(startIso, endIso) {
  if (!startIso) return "-";
  const end = endIso ? new Date(endIso) : new Date();
  let seconds = Math.max(0, Math.round((end - new Date(startIso)) / 1000));
  const parts = [];
  for (const [unit, size] of [["h", 3600], ["m", 60]]) {
    if (seconds >= size) {
      parts.push(`${Math.floor(seconds / size)}${unit}`);
      seconds %= size;
    }
  }
  parts.push(`${seconds}s`);
  return parts.join(" ");
}

/** A fragment link to one of the dashboard's pages, path segments encoded. */
export function pageLink(text, ...segments) {
  return h("a", { href: "#/" + segments.map((s) => encodeURIComponent(s)).join("/") }, text);
}

/** A table with a caption, header cells and rows of cells. */
export function table(caption, headers, rows) {
  return h(
    "table",
    null,
    h("caption", null, caption),
    h("thead", null, h("tr", null, headers.map((name) => h("th", { scope: "col" }, name)))),
    h("tbody", null, rows.map((cells) => h("tr", null, cells.map((cell) => h("td", null, cell))))),
  );
}

/** A labelled form control: {id, label, control}. */
export function field(id, label, control) {
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control);
}

/** Call fn now and every ms until the signal aborts; errors are reported, not fatal. */
export function poll(fn, ms, signal) {
  let timer = null;
  const tick = async () => {
    if (signal.aborted) return;
    try {
      const again = await fn();
      if (again === false) return;
    } catch (error) {
      if (!signal.aborted) say(error.message || String(error), "error");
    }
    if (!signal.aborted) timer = setTimeout(tick, ms);
  };
  signal.addEventListener("abort", () => clearTimeout(timer));
  tick();
}
