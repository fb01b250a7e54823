// Colour categories of transition kinds, and a one-line summary of a transition.

const CATEGORY = [
  [/^proposal\.rejected$|^approval\.denied$|^loop\.detected$|^conflict\./, "rejection"],
  [/^proposal\./, "proposal"],
  [/^tool\.(failed|timeout|unknown_outcome)$|^agent\.failed$|^run\.failed$|^supervisor\.escalated$|^budget\.exhausted$/, "failure"],
  [/^tool\./, "tool"],
  [/^agent\.restarted$/, "restart"],
  [/^hallucination\./, "hallucination"],
  [/^state\.restored$/, "restore"],
  [/^approval\./, "approval"],
  [/^exploration\.|^agent\./, "agent"],
  [/^tick\./, "tick"],
  [/^run\./, "run"],
];

export function category(kind) {
  for (const [re, name] of CATEGORY) if (re.test(kind)) return name;
  return "other";
}

export const LEGEND = [
  "proposal", "rejection", "tool", "failure", "restart", "hallucination", "restore",
  "approval", "agent", "tick", "run", "other",
];

function s(value, width = 60) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text === undefined ? "" : text.length > width ? text.slice(0, width - 1) + "…" : text;
}

export function summary(t) {
  const d = t.payload || {};
  switch (t.kind) {
    case "proposal.made":
      return `${d.action} ${d.args && Object.keys(d.args).length ? s(d.args, 50) : ""} (${Number(d.confidence).toFixed(2)})${d.reason ? ": " + s(d.reason, 50) : ""}`;
    case "proposal.accepted":
      return `#${d.proposal} accepted`;
    case "proposal.rejected":
      return `#${d.proposal ?? "?"} rejected by ${d.check}: ${s(d.reason)}`;
    case "tool.started":
      return `${d.tool} ${s(d.args, 50)}`;
    case "tool.completed":
      return `${d.tool} → ${s(d.result, 50)}`;
    case "tool.failed":
      return `${d.tool}: ${d.error} ${s(d.message, 40)}`;
    case "tool.timeout":
      return `${d.tool} timed out`;
    case "conflict.detected":
      return `${d.resource}: ${(d.proposals || []).map((p) => "#" + p).join(", ")}`;
    case "conflict.resolved":
      return `${d.resource}: #${d.winner} by ${d.policy} policy`;
    case "agent.spawned":
      return `${d.agent} (${d.role})${d.question ? " on " + s(d.question, 40) : ""}`;
    case "agent.restarted":
      return `${d.agent} by ${d.supervisor}, attempt ${d.attempt}`;
    case "agent.failed":
      return `${d.agent}: ${d.error} ${s(d.message, 40)}`;
    case "agent.terminated":
      return `${d.agent}: ${d.reason}`;
    case "hallucination.detected":
      return `${d.agent}: ${s(d.reason)}`;
    case "state.restored":
      return `to tick ${d.tick} (seq ${d.target})`;
    case "exploration.spawned":
      return `${d.explorer} on ${s(d.question, 40)}`;
    case "approval.requested":
      return `${d.tool} by ${d.agent} (proposal #${d.proposal})`;
    case "approval.granted":
      return `#${d.proposal} by ${d.by}`;
    case "approval.denied":
      return `#${d.proposal} by ${d.by}: ${s(d.reason, 40)}`;
    case "tick.started":
      return `tick ${d.tick}`;
    case "tick.completed":
      return `tick ${d.tick}: progress ${Number(d.progress).toFixed(2)} (+${Number(d.delta).toFixed(2)})${d.valid ? "" : " invalid"}`;
    case "memory.updated":
    case "belief.updated":
    case "plan.updated":
      return `${d.key} = ${s(d.value, 60)}`;
    case "run.booted":
      return s(d.goal);
    case "run.forked":
      return `from ${d.parent} at ${d.at}`;
    case "artifact.recorded":
      return d.name;
    case "model.called":
      return `${d.model || ""} ${d.usage ? s(d.usage, 40) : ""}`;
    default:
      for (const key of ["reason", "dimension", "pattern", "content", "source"]) {
        if (key in d) return s(d[key]);
      }
      return "";
  }
}
