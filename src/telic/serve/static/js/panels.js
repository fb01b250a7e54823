// Panels shared by the pages: budget gauges, the supervision tree, the state at a seq,
// a diff, a transition's full record, and the approval queue.

import { api } from "./api.js";
import { h, clear, json, short, number, runLink, toast } from "./dom.js";
import { category } from "./kinds.js";

export const DIMENSIONS = [
  ["tokens", "Tokens"],
  ["cost", "Cost"],
  ["ticks", "Ticks"],
  ["tool_calls", "Tool calls"],
  ["wall_s", "Wall time (s)"],
];
export const WARN_AT = 0.8;

function seqLink(runId, seq) {
  return h("a", { href: runLink(runId, seq), class: "seq-link" }, `#${seq}`);
}

export function gauges(state) {
  const budget = state.budget || {};
  const spent = state.spent || {};
  return h(
    "div",
    { class: "gauges" },
    DIMENSIONS.map(([dim, label]) => {
      const limit = budget[dim];
      const used = spent[dim] || 0;
      const ratio = limit ? used / limit : 0;
      const exhausted = (state.exhausted || []).includes(dim) || (limit && ratio >= 1);
      const warned = !exhausted && ((state.warned || []).includes(dim) || (limit && ratio >= WARN_AT));
      const cls = exhausted ? "exhausted" : warned ? "warn" : "ok";
      const unit = dim === "cost" ? ` ${state.currency || ""}` : "";
      return h(
        "div",
        { class: `gauge ${cls}`, dataset: { dimension: dim } },
        h("div", { class: "gauge-label" },
          h("span", {}, label),
          h("span", {}, limit ? `${number(used)} / ${number(limit)}${unit}` : `${number(used)}${unit} (no limit)`),
        ),
        h("div", {
          class: "gauge-bar",
          role: "meter",
          "aria-label": label,
          "aria-valuemin": "0",
          "aria-valuemax": String(limit || 0),
          "aria-valuenow": String(used),
        }, h("div", { class: "gauge-fill", style: { width: `${Math.min(100, ratio * 100)}%` } })),
        warned ? h("div", { class: "gauge-note" }, `⚠ over ${WARN_AT * 100}% of the budget`) : null,
        exhausted ? h("div", { class: "gauge-note" }, "✖ exhausted") : null,
      );
    }),
  );
}

function lastFailure(agent) {
  const failures = (agent.observations || []).filter(
    (o) => o.source === "failure" || (o.content && typeof o.content === "object" && "error" in o.content),
  );
  const last = failures[failures.length - 1];
  if (!last) return null;
  const c = last.content || {};
  return { seq: last.seq, text: `${c.error || "failure"}${c.message ? ": " + c.message : ""}` };
}

export function supervisionTree(runId, state) {
  // The run's tree: the root, its teams (state.supervision, recorded at boot for a run with
  // teams) and agents; explorers under the agent that spawned them.
  const agents = state.agents || {};
  const names = Object.keys(agents);
  const teams = (state.supervision && state.supervision.teams) || {};
  const rootInfo = state.supervision && state.supervision.root;
  const explorersOf = (parent) => names.filter((n) => agents[n].temporary && agents[n].parent === parent);
  const supOf = (n) => agents[n].supervisor || "root";
  const rank = (name) =>
    name in teams
      ? Math.min(names.length, ...Object.keys(teams).filter((t) => teams[t].supervisor === name).map(rank),
        ...names.filter((n) => !agents[n].temporary && supOf(n) === name).map(rank))
      : names.indexOf(name);
  const childrenOf = (sup) =>
    [...Object.keys(teams).filter((t) => teams[t].supervisor === sup),
      ...names.filter((n) => !agents[n].temporary && supOf(n) === sup)].sort((x, y) => rank(x) - rank(y));
  const node = (name) => {
    const a = agents[name];
    const failure = lastFailure(a);
    return h(
      "li",
      { class: "agent", dataset: { agent: name } },
      h("div", { class: "agent-line" },
        h("span", { class: "agent-name" }, name),
        h("span", { class: "agent-role" }, a.role),
        h("span", { class: `chip status-${a.status}` }, a.status),
        a.restarts ? h("span", { class: "agent-restarts" }, `${a.restarts} restart${a.restarts > 1 ? "s" : ""}`) : null,
      ),
      a.question ? h("div", { class: "agent-question" }, `explores: ${a.question}`) : null,
      failure ? h("div", { class: "agent-failure" }, "last failure: ", failure.text, " ", seqLink(runId, failure.seq)) : null,
      explorersOf(name).length ? h("ul", {}, explorersOf(name).map(node)) : null,
    );
  };
  const orphans = names.filter((n) => agents[n].temporary && !(agents[n].parent in agents));
  const supervisor = (name) => {
    const info = name === "root" ? rootInfo : teams[name];
    const counts = [];
    if (info && info.restarts) counts.push(`${info.restarts} restart${info.restarts > 1 ? "s" : ""}`);
    if (info && info.escalations) counts.push(`gave up ${info.escalations}×`);
    return h("li", { class: "supervisor", dataset: { supervisor: name } },
      h("div", { class: "agent-line" },
        h("span", { class: "agent-name" }, name),
        h("span", { class: "agent-role" }, name === "root" ? "root supervisor" : "team supervisor"),
        info ? h("span", { class: "agent-role sup-policy" }, `${info.strategy}, ${info.intensity} in ${number(info.period_s)} s`) : null,
        counts.length ? h("span", { class: "agent-restarts" }, counts.join(", ")) : null,
      ),
      h("ul", {},
        childrenOf(name).map((c) => (c in teams ? supervisor(c) : node(c))),
        name === "root" ? orphans.map(node) : null),
    );
  };
  return h("ul", { class: "tree" }, supervisor("root"));
}

function table(head, rows) {
  return h("table", { class: "kv" },
    h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows),
  );
}

export function statePanel(runId, out) {
  const s = out.state;
  const plan = Object.entries(s.plan || {});
  const beliefs = Object.entries(s.beliefs || {});
  const memory = Object.entries(s.memory || {});
  return h(
    "div",
    { class: "state", dataset: { seq: String(out.seq), stateHash: out.state_hash } },
    h("p", { class: "state-line" },
      h("strong", {}, `as of seq ${out.seq}`), ` · tick ${s.tick} · ${s.status} · progress ${number(s.progress)} · state hash `,
      h("code", { class: "state-hash", title: out.state_hash }, out.state_hash.slice(0, 16)),
    ),
    h("h3", {}, `Plan (${plan.length})`),
    plan.length ? table(["key", "value", "by", "seq"], plan.map(([k, v]) =>
      h("tr", {}, h("td", {}, k), h("td", { class: "val" }, short(v.value, 160)), h("td", {}, v.agent), h("td", {}, seqLink(runId, v.seq))),
    )) : h("p", { class: "muted" }, "nothing planned yet"),
    h("h3", {}, `Beliefs (${beliefs.length})`),
    beliefs.length ? table(["key", "value", "evidence", "by"], beliefs.map(([k, v]) =>
      h("tr", {}, h("td", {}, k), h("td", { class: "val" }, short(v.value, 120)),
        h("td", {}, (v.evidence || []).map((e) => [seqLink(runId, e), " "])), h("td", {}, v.agent)),
    )) : h("p", { class: "muted" }, "no beliefs yet"),
    h("h3", {}, `Memory (${memory.length} agents)`),
    memory.length ? table(["agent", "key", "value"], memory.flatMap(([agent, entries]) =>
      Object.entries(entries).map(([k, v]) => h("tr", {}, h("td", {}, agent), h("td", {}, k), h("td", { class: "val" }, short(v, 160)))),
    )) : h("p", { class: "muted" }, "empty"),
    Object.keys(s.pending_approvals || {}).length
      ? [h("h3", {}, "Waiting for approval"), h("pre", {}, json(s.pending_approvals))] : null,
    (s.restores || []).length ? [h("h3", {}, "Restores"), h("pre", {}, json(s.restores))] : null,
    rawJson(s),
  );
}

// The whole state as JSON, written out only when opened.
function rawJson(s) {
  const pre = h("pre", { class: "raw" });
  return h("details", { ontoggle: (e) => { if (e.target.open && !pre.textContent) pre.textContent = json(s); } },
    h("summary", {}, "The whole state as JSON"), pre);
}

export function diffPanel(changes) {
  if (!changes.length) return h("p", { class: "muted diff-empty" }, "no differences");
  return table(["path", "before", "after"], changes.map((c) =>
    h("tr", { class: "diff-row", dataset: { path: c.path } },
      h("td", { class: "path" }, c.path),
      h("td", { class: "val before" }, c.before === null || c.before === undefined ? "—" : short(c.before, 120)),
      h("td", { class: "val after" }, c.after === null || c.after === undefined ? "—" : short(c.after, 120)),
    ),
  ));
}

export function recordPanel(t) {
  return h(
    "div",
    { class: `record cat-${category(t.kind)}`, dataset: { seq: String(t.seq) } },
    h("h3", {}, h("span", { class: "kind-chip" }, t.kind), ` seq ${t.seq}`),
    h("dl", {},
      h("dt", {}, "tick"), h("dd", {}, t.tick),
      h("dt", {}, "agent"), h("dd", {}, t.agent || "kernel"),
      h("dt", {}, "time"), h("dd", {}, t.ts),
      h("dt", {}, "causes"), h("dd", { class: "causes" }, t.causes.length ? t.causes.map((c) => [seqLink(t.run, c), " "]) : "none"),
      h("dt", {}, "hash"), h("dd", {}, h("code", { class: "hash" }, t.hash)),
      h("dt", {}, "previous"), h("dd", {}, h("code", { class: "prev-hash" }, t.prev_hash)),
      h("dt", {}, "schema"), h("dd", {}, `v${t.v}`),
    ),
    h("h4", {}, "Payload"),
    h("pre", { class: "payload" }, json(t.payload)),
  );
}

// One waiting high-impact call: what it is, why the agent asked for it and on what evidence,
// and (with an approve token) the decision.
export function approvalCard(a, { canApprove, onDecided }) {
  const why = h("div", { class: "approval-why muted" }, "loading the proposal…");
  api.transition(a.run, a.proposal).then(
    (p) => {
      const d = p.payload;
      clear(why,
        h("div", {}, h("strong", {}, "Reason: "), d.reason || "(none given)", ` (confidence ${number(d.confidence)})`),
        (d.claims || []).length
          ? h("ul", { class: "claims" }, d.claims.map((c) => h("li", {}, `${c.key} = ${short(c.value, 80)}`, " ", (c.evidence || []).map((e) => [seqLink(a.run, e), " "]))))
          : h("div", {}, "no claims cited"),
      );
      why.classList.remove("muted");
    },
    () => clear(why, "the proposal could not be read"),
  );
  const reason = h("input", { type: "text", class: "approval-reason", placeholder: "reason (recorded with your name)", "aria-label": "Reason" });
  const decide = async (decision) => {
    try {
      await api.decide(a.run, a.proposal, decision, reason.value);
      toast(`${decision === "approve" ? "approved" : "denied"} proposal #${a.proposal}`, "ok");
      onDecided && onDecided();
    } catch (err) {
      toast(`${decision} failed: ${err.message}`);
    }
  };
  return h(
    "div",
    { class: "approval", dataset: { run: a.run, proposal: String(a.proposal) } },
    h("div", { class: "approval-head" },
      h("strong", {}, a.tool), ` by ${a.agent} · `,
      h("a", { href: runLink(a.run, a.requested_seq) }, `${a.run}@${a.requested_seq}`),
    ),
    h("pre", { class: "approval-args" }, json(a.args)),
    why,
    canApprove
      ? h("div", { class: "approval-actions" }, reason,
          h("button", { class: "approve", onclick: () => decide("approve") }, "Approve"),
          h("button", { class: "deny", onclick: () => decide("deny") }, "Deny"))
      : h("p", { class: "muted no-approve" }, "Deciding needs a token with the approve scope."),
  );
}
