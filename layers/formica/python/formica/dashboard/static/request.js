// One request: its facts and actions, the task timeline, the walk on the job's graph, a live log
// per task, artifacts, and approve / reject where a MANUAL task waits.
import { api, apiPath } from "./api.js";
import { drawGraph } from "./graph.js";
import { duration, field, fill, h, pageLink, poll, say, stateBadge, table, when } from "./dom.js";

const FINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

function facts(request) {
  const rows = [
    ["Job type", pageLink(request.job_type, "definitions", request.job_type)],
    ["Version", String(request.job_version)],
    ["State", stateBadge(request.job_state)],
    ["Description", request.description || "-"],
    ["Created", when(request.created_at)],
    ["Started", when(request.started_at)],
    ["Ended", when(request.ended_at)],
    ["Duration", duration(request.started_at, request.ended_at)],
  ];
  if (request.error_code) rows.push(["Error", `${request.error_code}: ${request.error_message || ""}`]);
  if (request.parent_id) rows.push(["Started by", pageLink(request.parent_id, "requests", request.parent_id)]);
  for (const [name, value] of Object.entries(request.params || {})) {
    rows.push([`Param ${name}`, typeof value === "string" ? value : JSON.stringify(value)]);
  }
  return h("dl", { class: "facts" }, rows.map(([name, value]) => [h("dt", null, name), h("dd", null, value)]));
}

function action(label, path, id, after, cls) {
  const button = h("button", { type: "button", class: cls || "" }, label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const answer = await api(apiPath("jobs", "requests", id, path), { method: "POST" });
      say(`${label}: the request is ${answer.job_state}.`);
    } catch (error) {
      say(error.message, "error");
    } finally {
      button.disabled = false;
      after();
    }
  });
  return button;
}

function timeline(tasks) {
  if (!tasks.length) return h("p", { class: "muted" }, "No task has run yet.");
  return table(
    "Tasks in the order the walk entered them",
    ["Task", "State", "Attempts", "Exit codes", "Started", "Ended", "Duration", "Error"],
    tasks.map((t) => [
      t.task_type,
      stateBadge(t.task_state),
      String(t.attempts),
      h("span", { class: "mono" }, (t.exit_codes.length ? t.exit_codes : [t.exit_code || "-"]).join(" → ")),
      when(t.started_at),
      when(t.ended_at),
      duration(t.started_at, t.ended_at),
      t.error_code ? `${t.error_code}: ${t.error_message || ""}` : "",
    ]),
  );
}

class LogTail {
  // One task's log, read by byte offset (`?since=N`: only the new text, with `next_since` and
  // `finished`), appended as it arrives; the view follows the end unless the reader scrolled up.
  // No `follow=true` long poll: a browser keeps at most six connections to one origin, and a page
  // with several tasks would spend them all waiting.
  constructor(requestId, taskType, index) {
    this.path = apiPath("jobs", "requests", requestId, "tasks", taskType, "logs");
    this.since = 0;
    this.finished = false;
    this.pre = h("pre", { class: "log", tabindex: 0, "aria-label": `Log of ${taskType}`, "data-task": taskType });
    this.element = h("section", { class: "log-tail", "aria-labelledby": `log-${index}` }, h("h3", { id: `log-${index}` }, `Log: ${taskType}`), this.pre);
    this.pre.textContent = "(waiting for output)";
  }

  async refresh() {
    if (this.finished) return;
    let chunk;
    try {
      chunk = await api(this.path, { query: { since: this.since } });
    } catch (error) {
      if (error.status === 404) return;
      throw error;
    }
    this.finished = Boolean(chunk.finished);
    if (!chunk.text) {
      if (this.finished && this.since === 0) this.pre.textContent = "(empty log)";
      return;
    }
    const following = this.pre.scrollTop + this.pre.clientHeight >= this.pre.scrollHeight - 4;
    if (this.since === 0) this.pre.textContent = "";
    this.pre.append(document.createTextNode(chunk.text));
    this.since = chunk.next_since;
    if (following) this.pre.scrollTop = this.pre.scrollHeight;
  }

  reopen() {
    // A restart runs tasks again: their new sections follow what was read.
    this.finished = false;
  }
}

function approvalsPanel(approvals, reload) {
  if (!approvals.length) return null;
  return h(
    "section",
    { class: "panel", "aria-labelledby": "approvals-title" },
    h("h2", { id: "approvals-title" }, "Waiting for approval"),
    approvals.map((approval, index) => {
      const comment = h("input", { type: "text", maxlength: 1000 });
      const vote = (approve) => async () => {
        try {
          const body = comment.value ? { comment: comment.value } : undefined;
          const answer = await api(apiPath("jobs", "requests", approval.request_id, "tasks", approval.task_type, approve ? "approve" : "reject"), { method: "POST", body });
          say(`Vote recorded: the approval is ${answer.state}.`);
        } catch (error) {
          say(error.message, "error");
        }
        reload();
      };
      return h(
        "div",
        { class: "approval" },
        h("h3", null, `Task ${approval.task_type}`),
        h("p", null, `${approval.approvals_needed} more approval(s) needed`, approval.deadline ? ["; deadline ", when(approval.deadline)] : "", "."),
        approval.votes.length ? h("ul", null, approval.votes.map((v) => h("li", null, `${v.voter}: ${v.approve ? "approved" : "rejected"}${v.comment ? ` (${v.comment})` : ""}`))) : null,
        field(`approval-comment-${index}`, "Comment (optional)", comment),
        h("div", { class: "actions" }, h("button", { type: "button", onclick: vote(true) }, "Approve"), h("button", { type: "button", class: "danger", onclick: vote(false) }, "Reject")),
      );
    }),
  );
}

async function openArtifact(requestId, artifact) {
  try {
    const link = await api(apiPath("jobs", "requests", requestId, "artifacts", artifact.id, "link"));
    // A presigned URL on the bucket's origin: opened in a new tab without the page's context.
    window.open(link.url, "_blank", "noopener,noreferrer");
  } catch (error) {
    say(error.message, "error");
  }
}

export async function requestPage([id], signal, main) {
  const heading = h("h1", null, "Request ", h("span", { class: "mono" }, id));
  const factsBox = h("div", { class: "panel" });
  const actions = h("div", { class: "actions", role: "group", "aria-label": "Request actions" });
  const approvalsBox = h("div");
  const tasksBox = h("div");
  const graphBox = h("div");
  const logsBox = h("div");
  const artifactsBox = h("div");
  const live = h("p", { class: "live" });
  fill(
    main,
    heading,
    live,
    factsBox,
    actions,
    approvalsBox,
    h("h2", null, "Tasks"),
    tasksBox,
    h("div", { class: "columns" }, h("section", { "aria-labelledby": "walk-title" }, h("h2", { id: "walk-title" }, "The walk"), graphBox), h("section", { "aria-labelledby": "logs-title" }, h("h2", { id: "logs-title" }, "Logs"), logsBox)),
    h("h2", null, "Artifacts"),
    artifactsBox,
  );
  const tails = new Map();
  let lastState = null;
  let finalReads = 0;
  const load = async () => {
    const request = await api(apiPath("jobs", "requests", id));
    if (signal.aborted) return false;
    fill(factsBox, facts(request));
    if (request.job_state !== lastState) {
      lastState = request.job_state;
      const final = FINAL.has(request.job_state);
      fill(
        actions,
        !final ? action("Cancel", "cancel", id, start, "danger") : null,
        request.job_state === "PENDING" ? action("Trigger now", "trigger", id, start) : null,
        final ? action("Restart", "restart", id, start) : null,
      );
    }
    fill(tasksBox, timeline(request.tasks));
    request.tasks.forEach((task) => {
      if (!tails.has(task.task_type)) {
        const tail = new LogTail(id, task.task_type, tails.size);
        tails.set(task.task_type, tail);
        logsBox.append(tail.element);
      }
    });
    const [graph, artifacts, pending] = await Promise.all([
      api(apiPath("jobs", "requests", id, "graph")),
      api(apiPath("jobs", "requests", id, "artifacts")),
      api("api/approvals/pending").catch(() => ({ approvals: [] })),
    ]);
    if (signal.aborted) return false;
    const nodeOf = new Map(graph.tasks.map((t) => [t.task_type, t.node]));
    const states = new Map(graph.tasks.filter((t) => t.task_state).map((t) => [t.node, t.task_state]));
    const walked = new Set(graph.edges.map((e) => `${nodeOf.get(e.from_task)}->${nodeOf.get(e.to_task)}`));
    fill(graphBox, drawGraph(graph.mermaid, { states, walked, title: `The walk of ${id}` }));
    fill(
      artifactsBox,
      artifacts.records.length
        ? table(
            "Files the tasks uploaded",
            ["Task", "Name", "Size", "Type", ""],
            artifacts.records.map((a) => [a.task_type, a.name, `${a.size} bytes`, a.content_type, h("button", { type: "button", class: "quiet", "aria-label": `Download ${a.name}`, onclick: () => openArtifact(id, a) }, "Download")]),
          )
        : h("p", { class: "muted" }, "No artifacts yet."),
    );
    fill(approvalsBox, approvalsPanel(pending.approvals.filter((a) => a.request_id === id && a.state === "PENDING"), start));
    await Promise.all([...tails.values()].map((tail) => tail.refresh()));
    const final = FINAL.has(request.job_state);
    const logsDone = [...tails.values()].every((tail) => tail.finished);
    if (final) finalReads += 1;
    // After the end, read on until every log says finished (a few reads at most).
    const settled = final && (logsDone || finalReads > 5);
    fill(live, settled ? "Finished." : `Live: updated ${new Date().toLocaleTimeString()}`);
    return !settled;
  };
  let polling = false;
  const tick = async () => {
    const again = await load();
    if (again === false) polling = false;
    return again;
  };
  function start() {
    // After an action the request changes again: read it (and follow it live) until it settles.
    if (polling) return;
    polling = true;
    finalReads = 0;
    for (const tail of tails.values()) tail.reopen();
    lastState = null;
    poll(tick, 1500, signal);
  }
  start();
}
