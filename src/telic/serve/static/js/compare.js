// Two runs side by side from the first seq where they diverge, and the diff of their ends.

import { api } from "./api.js";
import { h, clear, number, runLink } from "./dom.js";
import { category } from "./kinds.js";
import { diffPanel } from "./panels.js";

export class ComparePage {
  constructor(root, a, b) {
    this.root = root;
    clear(root, h("p", { class: "muted" }, `comparing ${a} and ${b}…`));
    this.load(a, b);
  }

  destroy() {}

  async load(a, b) {
    let c;
    try {
      c = await api.compare(a, b);
    } catch (err) {
      clear(this.root, h("p", { class: "error", role: "alert" }, err.message));
      return;
    }
    const side = (label, s) =>
      h("section", { class: "pane compare-side", dataset: { run: s.run } },
        h("h2", {}, `${label}: `, h("a", { href: runLink(s.run, c.diverged_at) }, s.run)),
        h("p", {}, h("span", { class: `chip status-${s.status}` }, s.status), ` progress ${number(s.progress)} · head ${number(s.head)}`),
        h("ol", { class: "decisions" },
          s.decisions.map((d) =>
            h("li", { class: `decision cat-${category(d.kind)}`, dataset: { seq: String(d.seq) } },
              h("a", { href: runLink(s.run, d.seq) }, `#${d.seq}`), ` t${String(d.tick).padStart(2, "0")} `,
              h("span", { class: "agent" }, d.agent || "kernel"), " ", h("span", { class: "kind" }, d.kind), " ", d.summary))),
        s.more ? h("p", { class: "muted" }, `… ${s.more} more decisions`) : null,
      );
    const where = c.diverged_at === null
      ? "the two runs are identical"
      : `they share seq 1..${c.shared} and diverge at seq ${c.diverged_at}`;
    clear(
      this.root,
      h("section", { class: "compare-page" },
        h("h1", {}, "Compare"),
        h("p", { class: "compare-where", "data-testid": "divergence", dataset: { divergedAt: String(c.diverged_at) } },
          `${c.a.run} vs ${c.b.run} (${c.relation}): ${where}`),
        h("div", { class: "compare-grid" }, side("A", c.a), side("B", c.b)),
        h("section", { class: "pane" },
          h("h2", {}, `Final states: ${c.final_diff.length} paths differ`),
          diffPanel(c.final_diff)),
      ),
    );
  }
}
