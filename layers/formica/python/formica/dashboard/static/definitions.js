// Job definitions: the listing with upload (paste or file; the validator's errors shown at their
// lines), and one job type: versions, YAML, the graph, enable/disable, max_concurrency.
import { api, apiPath, ApiError } from "./api.js";
import { drawGraph } from "./graph.js";
import { field, fill, h, pageLink, say, table, when } from "./dom.js";

/** The YAML as numbered lines, each error of the validator shown under the line it names. */
export function annotatedYaml(text, details) {
  const byLine = new Map();
  const elsewhere = [];
  for (const detail of details) {
    const message = detail.text || detail.message;
    if (detail.line) (byLine.get(detail.line) || byLine.set(detail.line, []).get(detail.line)).push(message);
    else elsewhere.push(message);
  }
  const lines = text.split("\n");
  return h(
    "div",
    null,
    elsewhere.length ? h("ul", { class: "alert" }, elsewhere.map((m) => h("li", null, m))) : null,
    h(
      "ol",
      { class: "yaml", "aria-label": "The definition with its errors" },
      lines.map((line, index) => {
        const number = index + 1;
        const errors = byLine.get(number) || [];
        return h(
          "li",
          { "data-line": number, class: errors.length ? "has-error" : "" },
          h("span", { class: "ln", "aria-hidden": "true" }, String(number)),
          h("span", null, line || " "),
          errors.map((m) => h("span", { class: "line-error", role: "note" }, h("span", { class: "visually-hidden" }, `Error at line ${number}: `), m)),
        );
      }),
    ),
  );
}

function uploadForm(reload) {
  const text = h("textarea", { spellcheck: "false", "aria-describedby": "upload-help" });
  const file = h("input", { type: "file", accept: ".yaml,.yml,.json,application/yaml,application/json,text/yaml" });
  const outcome = h("div", { "aria-live": "polite" });
  file.addEventListener("change", async () => {
    if (file.files.length) text.value = await file.files[0].text();
  });
  const form = h(
    "form",
    { class: "panel", "aria-labelledby": "upload-title" },
    h("h2", { id: "upload-title" }, "Upload a definition"),
    field("upload-yaml", "Definition (YAML or JSON)", text),
    h("p", { id: "upload-help", class: "muted" }, "Paste it, or choose a file. A new version is stored when the text changed."),
    field("upload-file", "Or choose a file", file),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Upload")),
    outcome,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const source = text.value;
    const contentType = source.trimStart().startsWith("{") ? "application/json" : "application/yaml";
    try {
      const stored = await api("api/jobs/definitions", { method: "POST", body: source, contentType });
      fill(outcome, h("p", { role: "status" }, `Stored ${stored.job_type} version ${stored.version}. `, pageLink("Open it", "definitions", stored.job_type)));
      await reload();
    } catch (error) {
      if (!(error instanceof ApiError) || !error.body.details) throw error;
      fill(
        outcome,
        h("h3", { id: "upload-errors", class: "alert", role: "alert" }, `Not stored: ${error.body.message} (${error.body.details.length} problem${error.body.details.length === 1 ? "" : "s"})`),
        annotatedYaml(source, error.body.details),
      );
    }
  });
  return form;
}

export async function definitionsPage(_params, signal, main) {
  const list = h("div");
  const load = async () => {
    const answer = await api("api/jobs/definitions", { query: { limit: 100 } });
    if (signal.aborted) return;
    fill(
      list,
      answer.records.length
        ? table(
            "Job types of the organisation",
            ["Job type", "Latest version", "Enabled", "Max concurrency", "Cron", "Description", "Updated"],
            answer.records.map((d) => [pageLink(d.job_type, "definitions", d.job_type), String(d.latest_version), d.disabled ? "disabled" : "enabled", d.max_concurrency ? String(d.max_concurrency) : "unlimited", d.cron_trigger || "-", d.description || "", when(d.updated_at)]),
          )
        : h("p", { class: "muted" }, "No job types yet: upload one below."),
    );
  };
  fill(main, h("h1", null, "Definitions"), list, uploadForm(load));
  await load();
}

export async function definitionPage([jobType, version], signal, main) {
  const query = version ? { version } : {};
  const base = apiPath("jobs", "definitions", jobType);
  const [definition, versions, yaml, mermaid] = await Promise.all([
    api(base, { query }),
    api(base + "/versions", { query: { limit: 100 } }),
    api(base + "/yaml", { query }),
    api(base + "/graph", { query }),
  ]);
  if (signal.aborted) return;
  const concurrency = h("input", { type: "number", min: 0, max: 10000, value: String(definition.max_concurrency) });
  const toggle = h("button", { type: "button", class: definition.disabled ? "" : "danger" }, definition.disabled ? "Enable" : "Disable");
  toggle.addEventListener("click", async () => {
    try {
      await api(`${base}/${definition.disabled ? "enable" : "disable"}`, { method: "POST" });
      say(`${jobType} ${definition.disabled ? "enabled" : "disabled"}.`);
      await definitionPage([jobType, version], signal, main);
    } catch (error) {
      say(error.message, "error");
    }
  });
  const concurrencyForm = h("form", { class: "row" }, field("max-concurrency", "Max concurrency (0: unlimited)", concurrency), h("button", { type: "submit" }, "Save"));
  concurrencyForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const answer = await api(`${base}/concurrency`, { method: "PUT", body: { max_concurrency: Number(concurrency.value) } });
      say(`Max concurrency of ${jobType} is now ${answer.max_concurrency || "unlimited"}.`);
    } catch (error) {
      say(error.message, "error");
    }
  });
  fill(
    main,
    h("h1", null, `Job type ${definition.job_type}`),
    h(
      "div",
      { class: "panel" },
      h(
        "dl",
        { class: "facts" },
        [
          ["Version shown", `${definition.version} of ${definition.latest_version}`],
          ["State", definition.disabled ? "disabled" : "enabled"],
          ["Description", definition.description || "-"],
          ["Required params", definition.required_params.join(", ") || "none"],
          ["Cron", definition.cron_trigger || "-"],
          ["Next fires", definition.next_fire_times.length ? definition.next_fire_times.map((t) => [when(t), " "]) : "-"],
        ].map(([name, value]) => [h("dt", null, name), h("dd", null, value)]),
      ),
      h("div", { class: "actions" }, toggle),
      concurrencyForm,
    ),
    h("div", { class: "columns" }, h("section", { "aria-labelledby": "graph-title" }, h("h2", { id: "graph-title" }, "Graph"), drawGraph(mermaid, { title: `The tasks of ${jobType}` }), h("details", null, h("summary", null, "Mermaid source"), h("pre", null, mermaid))), h("section", { "aria-labelledby": "yaml-title" }, h("h2", { id: "yaml-title" }, "YAML"), h("pre", { tabindex: 0, "aria-label": "The definition's YAML" }, yaml))),
    h("h2", null, "Versions"),
    table(
      "Stored versions, newest first",
      ["Version", "Stored", "sha256", ""],
      versions.records.map((v) => [h("a", { href: `#/definitions/${encodeURIComponent(jobType)}?version=${v.version}` }, `version ${v.version}`), when(v.created_at), h("span", { class: "mono" }, v.sha256.slice(0, 16)), v.latest ? "latest" : ""]),
    ),
  );
}
