// Every run, forks shown under their parent, with live updates; the approval queue of every
// run; and a form to compare two runs.

import { api, stream } from "./api.js";
import { h, clear, number, runLink, toast } from "./dom.js";
import { approvalCard } from "./panels.js";

const PAGE = 100;

export class RunsPage {
  constructor(root, me) {
    this.root = root;
    this.me = me;
    this.details = new Map(); // run id -> {head, detail}
    this.verified = new Map(); // run id -> {status, report}
    this.body = h("tbody", {});
    this.queue = h("div", { class: "approvals", "data-testid": "approval-queue" });
    this.a = h("select", { class: "compare-a", "aria-label": "First run" });
    this.b = h("select", { class: "compare-b", "aria-label": "Second run" });
    this.more = h("p", { class: "muted" });
    clear(
      root,
      h("section", { class: "runs-page" },
        h("h1", {}, "Runs"),
        h("div", { class: "runs-grid" },
          h("div", { class: "pane" },
            h("div", { class: "table-wrap" }, h("table", { class: "runs", "data-testid": "runs" },
              h("thead", {}, h("tr", {}, ["run", "goal", "status", "progress", "transitions", "budget used", "chain"].map((c) => h("th", {}, c)))),
              this.body)),
            this.more),
          h("aside", { class: "pane" },
            h("h2", {}, "Approval queue"), this.queue,
            h("h2", {}, "Compare two runs"),
            h("form", { class: "compare-form", onsubmit: (e) => { e.preventDefault(); this.compare(); } },
              this.a, " vs ", this.b, " ", h("button", { type: "submit" }, "Compare")),
          ),
        ),
      ),
    );
    this.refresh = throttled(() => this.load(), 1000);
    this.load();
    this.stop = stream("/events", { onEvent: (type) => this.onEvent(type) });
  }

  destroy() {
    this.stop && this.stop();
  }

  onEvent() {
    this.refresh();
  }

  async load() {
    let page;
    try {
      page = await api.runs({ limit: PAGE });
    } catch (err) {
      clear(this.body, h("tr", {}, h("td", { colspan: "7", class: "error" }, err.message)));
      return;
    }
    this.more.textContent = page.total > page.items.length ? `showing the newest ${page.items.length} of ${page.total} runs` : "";
    const runs = page.items;
    await Promise.all(runs.map((r) => this.detail(r)));
    const byId = new Map(runs.map((r) => [r.id, r]));
    const kids = new Map();
    const roots = [];
    for (const r of [...runs].reverse()) {
      const p = r.parent && byId.has(r.parent.run) ? r.parent.run : null;
      if (p) { if (!kids.has(p)) kids.set(p, []); kids.get(p).push(r); } else roots.push(r);
    }
    const rows = [];
    const walk = (r, depth) => {
      rows.push(this.row(r, depth));
      for (const k of kids.get(r.id) || []) walk(k, depth + 1);
    };
    roots.forEach((r) => walk(r, 0));
    clear(this.body, rows.length ? rows : h("tr", {}, h("td", { colspan: "7", class: "muted" }, "no runs yet: `telic demo` makes one")));
    this.fillCompare(runs);
    this.loadQueue();
  }

  async detail(r) {
    const known = this.details.get(r.id);
    if (!known || known.head !== r.head) {
      try { this.details.set(r.id, { head: r.head, detail: await api.run(r.id) }); } catch { /* shown without */ }
    }
    // Verifying reads the whole chain: once per run, and again when its status changes.
    const v = this.verified.get(r.id);
    if (!v || v.status !== r.status) {
      try { this.verified.set(r.id, { status: r.status, report: await api.verify(r.id) }); } catch { /* shown without */ }
    }
  }

  row(r, depth) {
    const d = (this.details.get(r.id) || {}).detail;
    const v = (this.verified.get(r.id) || {}).report;
    const progress = d ? d.progress : 0;
    const used = d ? [
      d.budget.cost ? `${number(d.spent.cost)}/${number(d.budget.cost)} ${d.currency}` : `${number(d.spent.cost)} ${d.currency}`,
      d.budget.ticks ? `${d.spent.ticks}/${d.budget.ticks} ticks` : `${d.spent.ticks} ticks`,
    ].join(" · ") : "";
    return h("tr", { class: `run-row depth-${Math.min(depth, 6)}`, dataset: { run: r.id, parent: r.parent ? r.parent.run : "" } },
      h("td", { class: "run-cell", style: { paddingLeft: `${0.5 + depth * 1.25}rem` } },
        depth ? h("span", { class: "fork-mark", title: `forked at seq ${r.parent.seq}` }, `↳ @${r.parent.seq} `) : null,
        h("a", { href: runLink(r.id) }, r.id)),
      h("td", { class: "goal" }, r.goal),
      h("td", {}, h("span", { class: `chip status-${r.status}` }, r.status)),
      h("td", {}, h("div", { class: "progress", role: "progressbar", "aria-valuenow": String(progress), "aria-valuemin": "0", "aria-valuemax": "1" },
        h("div", { class: "progress-fill", style: { width: `${Math.round(progress * 100)}%` } })), number(progress)),
      h("td", { class: "num" }, number(r.head)),
      h("td", {}, used),
      h("td", {}, v ? h("span", { class: `badge ${v.ok ? "ok" : "bad"}` }, v.ok ? "✔ intact" : `✖ seq ${v.first_bad}`) : ""),
    );
  }

  fillCompare(runs) {
    const keepA = this.a.value;
    const keepB = this.b.value;
    const options = () => runs.map((r) => h("option", { value: r.id }, `${r.id} ${r.parent ? "(fork)" : ""}`));
    clear(this.a, options());
    clear(this.b, options());
    const fork = runs.find((r) => r.parent);
    this.a.value = keepA || (fork ? fork.parent.run : runs[1] ? runs[1].id : runs[0] ? runs[0].id : "");
    this.b.value = keepB || (fork ? fork.id : runs[0] ? runs[0].id : "");
  }

  compare() {
    if (!this.a.value || !this.b.value) return toast("pick two runs");
    location.hash = `#/compare/${encodeURIComponent(this.a.value)}/${encodeURIComponent(this.b.value)}`;
  }

  async loadQueue() {
    try {
      const waiting = await api.approvals();
      const canApprove = this.me.scopes.includes("approve");
      clear(this.queue, waiting.length
        ? waiting.map((a) => approvalCard(a, { canApprove, onDecided: () => this.load() }))
        : h("p", { class: "muted" }, "nothing waits for approval"));
    } catch (err) {
      clear(this.queue, h("p", { class: "error" }, err.message));
    }
  }
}

function throttled(fn, ms) {
  let timer = null;
  let again = false;
  const fire = () => {
    timer = setTimeout(async () => {
      again = false;
      await fn();
      timer = null;
      if (again) { again = false; fire(); }
    }, ms);
  };
  return () => { if (timer) again = true; else fire(); };
}
