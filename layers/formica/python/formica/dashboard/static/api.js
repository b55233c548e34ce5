// The JSON API, called with the token this tab signed in with (sessionStorage: gone when the tab
// closes, never sent anywhere but the API's own origin).

const TOKEN_KEY = "formica.token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function signIn(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? `${body.message} (${status})` : `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

/** A path under the API, each segment encoded: apiPath("jobs", "requests", id) -> "api/jobs/requests/<id>". */
export function apiPath(...segments) {
  return ["api", ...segments.map((s) => encodeURIComponent(s))].join("/");
}

/**
 * Call the API. `path` is relative to the page ("api/..."), so the same page works at a stage's
 * root in AWS and at / under `formica dev`. Answers the parsed JSON, or the text of a text answer.
 */
export async function api(path, { method = "GET", body, contentType, query } = {}) {
  const url = new URL(path, document.baseURI);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const headers = { Authorization: `Bearer ${token() || ""}` };
  let payload = body;
  if (body !== undefined && contentType === undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  } else if (contentType) {
    headers["Content-Type"] = contentType;
  }
  const response = await fetch(url, { method, headers, body: payload, cache: "no-store", credentials: "omit" });
  const type = response.headers.get("Content-Type") || "";
  const parsed = type.includes("json") ? await response.json().catch(() => null) : await response.text();
  if (response.status === 401) {
    signOut();
    window.dispatchEvent(new Event("formica:signed-out"));
  }
  if (!response.ok) throw new ApiError(response.status, typeof parsed === "object" ? parsed : { message: parsed });
  return parsed;
}
