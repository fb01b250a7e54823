// The dashboard's router: #/ (runs), #/run/ID@SEQ (a run as of a seq), #/compare/A/B.

import { api, setToken, token } from "./api.js";
import { h, clear } from "./dom.js";
import { ComparePage } from "./compare.js";
import { RunPage } from "./run.js";
import { RunsPage } from "./runs.js";

const root = document.getElementById("main");
const who = document.getElementById("who");
let page = null;
let me = { name: "anonymous", scopes: [] };

function parse(hash) {
  const path = decodeURIComponent(hash.replace(/^#/, ""));
  let m = path.match(/^\/run\/([^@/]+)(?:@(\d+))?$/);
  if (m) return { view: "run", id: m[1], seq: m[2] === undefined ? null : Number(m[2]) };
  m = path.match(/^\/compare\/([^/]+)\/([^/]+)$/);
  if (m) return { view: "compare", a: m[1], b: m[2] };
  return { view: "runs" };
}

function route(hash = location.hash) {
  const r = parse(hash);
  if (page instanceof RunPage && r.view === "run" && r.id === page.runId) {
    if (r.seq !== null && r.seq !== page.seq) page.setSeq(r.seq, { from: "link" });
    return;
  }
  if (page) page.destroy();
  if (r.view === "run") page = new RunPage(root, r.id, r.seq, me);
  else if (r.view === "compare") page = new ComparePage(root, r.a, r.b);
  else page = new RunsPage(root, me);
  root.focus({ preventScroll: true });
}

async function identify() {
  try {
    me = await api.me();
  } catch (err) {
    me = { name: token() ? "invalid token" : "no token", scopes: [], error: err.message };
  }
  clear(who,
    h("span", { class: "who-name", "data-testid": "identity" }, me.name),
    me.scopes.length ? h("span", { class: "who-scopes" }, ` (${me.scopes.join(", ")})`) : null,
  );
}

document.getElementById("token-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = document.getElementById("token-input");
  setToken(input.value.trim());
  input.value = "";
  document.getElementById("token-dialog").close();
  await identify();
  if (page) page.destroy();
  page = null;
  route();
});
document.getElementById("token-button").addEventListener("click", () =>
  document.getElementById("token-dialog").showModal(),
);
document.getElementById("token-clear").addEventListener("click", async () => {
  setToken("");
  document.getElementById("token-dialog").close();
  await identify();
  if (page) page.destroy();
  page = null;
  route();
});

// The event's own address: the run page rewrites the address as its seq moves, which may land
// between a navigation and its hashchange event.
window.addEventListener("hashchange", (e) => route(new URL(e.newURL).hash));
await identify();
route();
