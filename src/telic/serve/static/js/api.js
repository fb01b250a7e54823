// The dashboard's only way in: telic's HTTP API. A token (if any) rides in the
// Authorization header; live streams are read with fetch so that header goes with them too.

const TOKEN_KEY = "telic.token";

export function token() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

function headers(extra = {}) {
  const h = { Accept: "application/json", ...extra };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

async function handle(response) {
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const code = body && body.error ? body.error : String(response.status);
    const detail = body && body.detail ? body.detail : typeof body === "string" ? body : "";
    throw new ApiError(response.status, code, detail);
  }
  return body;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

export async function get(path, params = {}, signal = undefined) {
  return handle(await fetch(path + query(params), { headers: headers(), signal }));
}

export async function post(path, body = {}) {
  return handle(
    await fetch(path, {
      method: "POST",
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify(body),
    }),
  );
}

export const api = {
  me: () => get("/me"),
  runs: (params) => get("/runs", params),
  run: (id) => get(`/runs/${encodeURIComponent(id)}`),
  transitions: (id, params, signal) =>
    get(`/runs/${encodeURIComponent(id)}/transitions`, params, signal),
  transition: (id, seq) => get(`/runs/${encodeURIComponent(id)}/transitions/${seq}`),
  state: (id, at, signal) => get(`/runs/${encodeURIComponent(id)}/state`, { at }, signal),
  diff: (id, a, b) => get(`/runs/${encodeURIComponent(id)}/diff`, { a, b }),
  transcript: (id) => get(`/runs/${encodeURIComponent(id)}/transcript`),
  verify: (id) => get(`/runs/${encodeURIComponent(id)}/verify`),
  approvals: (id) =>
    id ? get(`/runs/${encodeURIComponent(id)}/approvals`) : get("/approvals"),
  decide: (id, proposal, decision, reason) =>
    post(`/runs/${encodeURIComponent(id)}/approvals/${proposal}`, { decision, reason }),
  fork: (id, at) => post(`/runs/${encodeURIComponent(id)}/fork`, { at }),
  resume: (id) => post(`/runs/${encodeURIComponent(id)}/resume`, { reason: "resumed from the dashboard" }),
  compare: (a, b, limit = 200) => get("/compare", { a, b, limit }),
};

// Server-Sent Events over fetch: catch-up from `from`, then live; on a dropped connection it
// reconnects with Last-Event-ID, so nothing is missed or seen twice. Returns a stop function.
export function stream(path, { from, onEvent, onState }) {
  let lastId = null;
  let stopped = false;
  let controller = null;
  let delay = 500;

  async function connect() {
    while (!stopped) {
      controller = new AbortController();
      const extra = { Accept: "text/event-stream" };
      if (lastId !== null) extra["Last-Event-ID"] = lastId;
      const params = lastId === null && from ? { from } : {};
      try {
        const response = await fetch(path + query(params), {
          headers: headers(extra),
          signal: controller.signal,
        });
        if (!response.ok) throw new ApiError(response.status, String(response.status), "");
        onState && onState("live");
        delay = 500;
        await read(response.body.getReader());
      } catch (err) {
        if (stopped) return;
        if (err instanceof ApiError && (err.status === 401 || err.status === 403 || err.status === 404)) {
          onState && onState("refused");
          return;
        }
      }
      if (stopped) return;
      onState && onState("reconnecting");
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 8000);
    }
  }

  async function read(reader) {
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      // Frames are cut with a moving index and the rest kept once per chunk: a catch-up chunk
      // of thousands of frames costs its length, not its length squared.
      let start = 0;
      let cut;
      while ((cut = buffer.indexOf("\n\n", start)) >= 0) {
        frame(buffer.slice(start, cut));
        start = cut + 2;
      }
      buffer = buffer.slice(start);
    }
  }

  function frame(text) {
    let event = "message";
    let id = null;
    const data = [];
    for (const line of text.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = val;
      else if (field === "id") id = val;
      else if (field === "data") data.push(val);
    }
    if (!data.length) return;
    if (id !== null) lastId = id;
    if (event === "stream.dropped") return; // the server cut us off: the reconnect resumes
    onEvent(event, JSON.parse(data.join("\n")));
  }

  connect();
  return () => {
    stopped = true;
    if (controller) controller.abort();
  };
}
