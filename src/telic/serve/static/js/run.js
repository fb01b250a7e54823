// One run: live transcript and timeline, time travel (state at a seq, diff of two points),
// fork here / resume, budgets, supervision tree, approvals, and the verify badge.

import { api, stream } from "./api.js";
import { h, clear, number, runLink, toast } from "./dom.js";
import { LEGEND } from "./kinds.js";
import { approvalCard, diffPanel, gauges, recordPanel, statePanel, supervisionTree } from "./panels.js";
import { Timeline } from "./timeline.js";

const ENDED = new Set(["completed", "failed", "stopped"]);

// Calls fn at most once per `ms`, and never more often than every 4x its last duration: a
// read that grows with the run (the transcript of 100,000 transitions) is asked for less often
// instead of queueing up on the server.
function throttle(fn, ms) {
  let timer = null;
  let again = false;
  const run = async () => {
    again = false;
    const t0 = performance.now();
    try { await fn(); } catch { /* shown by fn, retried on the next call */ } finally {
      const wait = Math.max(ms, 4 * (performance.now() - t0));
      timer = setTimeout(() => { timer = null; if (again) wrapped(); }, wait);
    }
  };
  const wrapped = () => { if (timer) again = true; else { timer = 1; run(); } };
  return wrapped;
}

export class RunPage {
  constructor(root, runId, seq, me) {
    this.root = root;
    this.runId = runId;
    this.me = me;
    this.head = 0;
    this.seq = null; // as-of seq; null follows the head (live)
    this.wantState = null;
    this.stateBusy = false;
    this.stateShown = new Promise((resolve) => { this.resolveShown = resolve; });
    this.build();
    this.start(seq);
  }

  build() {
    const id = this.runId;
    this.title = h("h1", { class: "run-title" }, id);
    this.status = h("span", { class: "chip", "data-testid": "status" }, "…");
    this.badge = h("button", {
      class: "badge pending", "data-testid": "verify", title: "Verify the chain again",
      onclick: () => this.refreshVerify(),
    }, "verifying…");
    this.progress = h("span", { class: "progress-text" });
    this.parent = h("span", { class: "parent" });
    this.resumeBtn = h("button", { class: "resume", onclick: () => this.resume(), hidden: true }, "Resume");
    this.forkBtn = h("button", { class: "fork", onclick: () => this.fork() }, "Fork here");
    this.goal = h("p", { class: "goal" });
    this.slider = h("input", {
      type: "range", min: "0", max: "0", value: "0", class: "travel-slider",
      "aria-label": "As of sequence number",
      oninput: () => this.setSeq(Number(this.slider.value), { from: "slider" }),
    });
    this.seqInput = h("input", {
      type: "number", min: "0", class: "travel-seq", "aria-label": "Sequence number",
      onchange: () => this.setSeq(Number(this.seqInput.value), { from: "input" }),
    });
    this.liveBtn = h("button", { class: "live", onclick: () => this.follow() }, "Live");
    this.asOf = h("span", { class: "as-of", "data-testid": "as-of" });
    this.timeline = new Timeline(id, { onSelect: (seq) => this.setSeq(seq, { from: "timeline" }) });
    this.tabs = {};
    this.panels = {};
    const tab = (name, label) => {
      this.tabs[name] = h("button", { role: "tab", class: "tab", id: `tab-${name}`, "aria-controls": `panel-${name}`, onclick: () => this.show(name) }, label);
      this.panels[name] = h("div", { role: "tabpanel", id: `panel-${name}`, class: "tabpanel", "aria-labelledby": `tab-${name}`, hidden: true });
    };
    tab("record", "Record");
    tab("state", "State");
    tab("diff", "Diff");
    this.diffA = h("input", { type: "number", min: "0", class: "diff-a", "aria-label": "Diff from seq" });
    this.diffB = h("input", { type: "number", min: "0", class: "diff-b", "aria-label": "Diff to seq" });
    this.diffOut = h("div", { class: "diff-out" });
    this.panels.diff.append(
      h("form", { class: "diff-form", onsubmit: (e) => { e.preventDefault(); this.diff(); } },
        "from seq ", this.diffA, " to seq ", this.diffB, " ", h("button", { type: "submit" }, "Show diff")),
      this.diffOut,
    );
    this.gauges = h("div", { "data-testid": "budgets" });
    this.approvals = h("div", { class: "approvals", "data-testid": "approvals" });
    this.agents = h("div", { "data-testid": "agents" });
    this.transcript = h("pre", { class: "transcript", "data-testid": "transcript", "aria-live": "polite" });
    this.connection = h("span", { class: "connection" }, "connecting");

    clear(
      this.root,
      h("section", { class: "run-page" },
        h("header", { class: "run-head" },
          h("div", { class: "run-id" }, h("a", { href: "#/", class: "back" }, "← runs"), this.title, this.status, this.badge, this.connection),
          this.goal,
          h("div", { class: "run-meta" }, this.progress, this.parent),
          h("div", { class: "run-actions" }, this.forkBtn, this.resumeBtn,
            h("button", { class: "mark", onclick: () => this.mark(), title: "Use this seq as the diff's first point (m)" }, "Mark for diff")),
        ),
        h("div", { class: "travel" },
          h("label", {}, "As of seq ", this.seqInput), this.slider, this.liveBtn, this.asOf),
        h("div", { class: "run-grid" },
          h("section", { class: "pane timeline-pane", "aria-label": "Timeline" },
            h("h2", {}, "Timeline"),
            h("div", { class: "legend" }, LEGEND.map((c) => h("span", { class: `legend-item cat-${c}` }, c))),
            this.timeline.el),
          h("section", { class: "pane detail-pane" },
            h("div", { role: "tablist", class: "tabs" }, Object.values(this.tabs)),
            Object.values(this.panels)),
          h("aside", { class: "pane side-pane" },
            h("h2", {}, "Budgets"), this.gauges,
            h("h2", {}, "Approvals"), this.approvals,
            h("h2", {}, "Supervision"), this.agents,
            h("h2", {}, "Transcript"), this.transcript),
        ),
      ),
    );
    this.keys = (e) => this.key(e);
    document.addEventListener("keydown", this.keys);
    this.show("state");
  }

  show(name) {
    for (const [n, el] of Object.entries(this.panels)) {
      el.hidden = n !== name;
      this.tabs[n].setAttribute("aria-selected", n === name ? "true" : "false");
    }
  }

  key(e) {
    const target = e.target;
    if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement) return;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "m") this.mark();
    else if (e.key === "t") this.timeline.el.focus();
    else if (e.key === "1") this.show("record");
    else if (e.key === "2") this.show("state");
    else if (e.key === "3") this.show("diff");
    else if (e.key === "l") this.follow();
  }

  async start(seq) {
    try {
      await this.refreshRun();
    } catch (err) {
      clear(this.root, h("p", { class: "error", role: "alert" }, `run ${this.runId}: ${err.message}`));
      return;
    }
    this.timeline.setHead(this.head);
    this.liveRun = throttle(() => this.refreshRun(), 500);
    this.liveTranscript = throttle(() => this.refreshTranscript(), 500);
    const from = this.head + 1;
    if (seq !== null && seq !== undefined) this.setSeq(seq, { from: "link" });
    else this.follow();
    // The state first (it makes the page usable); then the stream, which catches up from the
    // head read above, so nothing committed meanwhile is missed; then the reads that grow
    // with the run.
    await this.stateShown;
    if (this.closed) return;
    this.stop = stream(`/runs/${encodeURIComponent(this.runId)}/events`, {
      from,
      onEvent: (_type, t) => this.onTransition(t),
      onState: (state) => { this.connection.textContent = state; this.connection.dataset.state = state; },
    });
    this.liveTranscript();
    this.refreshVerify();
  }

  destroy() {
    this.stop && this.stop();
    this.timeline.destroy();
    document.removeEventListener("keydown", this.keys);
    this.closed = true;
    if (this.frame) cancelAnimationFrame(this.frame);
  }

  // Live transitions are taken in as they come but shown once per frame: a run committing
  // thousands a second costs one render a frame, not one per transition.
  onTransition(t) {
    if (t.seq <= this.head) return;
    this.head = t.seq;
    this.timeline.add(t, { render: false });
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
      this.timeline.setHead(this.head, { render: false });
      this.slider.max = String(this.head);
      this.seqInput.max = String(this.head);
      if (this.seq === null) this.showSeq(this.head); // renders the timeline once
      else this.timeline.render();
      this.liveRun();
      this.liveTranscript();
    });
  }

  async refreshRun() {
    const run = await api.run(this.runId);
    const before = this.run;
    this.head = Math.max(this.head, run.head);
    this.timeline.setHead(this.head);
    this.slider.max = String(this.head);
    this.seqInput.max = String(this.head);
    this.title.textContent = run.id;
    this.goal.textContent = run.goal;
    if (before && before.status !== run.status) this.refreshVerify(); // it ended, or went on
    this.run = run;
    this.status.textContent = run.status;
    this.status.className = `chip status-${run.status}`;
    this.progress.textContent = `progress ${number(run.progress)} · tick ${run.tick} · ${number(run.head)} transitions`;
    clear(this.parent, run.parent
      ? ["forked from ", h("a", { href: runLink(run.parent.run, run.parent.seq) }, `${run.parent.run}@${run.parent.seq}`),
         " · ", h("a", { href: `#/compare/${encodeURIComponent(run.parent.run)}/${encodeURIComponent(run.id)}`, class: "compare-parent" }, "compare with parent")]
      : "");
    const operate = this.me.scopes.includes("operate");
    this.forkBtn.disabled = !operate;
    this.forkBtn.title = operate ? "Fork this run at the selected seq and open the fork" : "needs an operate token";
    this.resumeBtn.hidden = !operate || ENDED.has(run.status) || run.hosted || run.status === "new";
    const canApprove = this.me.scopes.includes("approve");
    clear(this.approvals, run.approvals.length
      ? run.approvals.map((a) => approvalCard(a, { canApprove, onDecided: () => this.refreshRun() }))
      : h("p", { class: "muted" }, "nothing waits"));
    if (this.seq === null && this.lastState && this.lastState.seq !== this.head) this.showSeq(this.head);
  }

  async refreshTranscript() {
    const out = await api.transcript(this.runId);
    const follow = this.transcript.scrollTop + this.transcript.clientHeight >= this.transcript.scrollHeight - 4;
    this.transcript.textContent = out.lines.join("\n");
    if (follow) this.transcript.scrollTop = this.transcript.scrollHeight;
  }

  async refreshVerify() {
    try {
      const v = await api.verify(this.runId);
      this.badge.className = `badge ${v.ok ? "ok" : "bad"}`;
      this.badge.textContent = v.ok ? `✔ chain intact (${number(v.checked)})` : `✖ broken at seq ${v.first_bad}`;
      this.badge.title = v.ok ? `head ${v.head_hash}` : v.reason || "";
      this.badge.dataset.firstBad = v.ok ? "" : String(v.first_bad);
    } catch (err) {
      this.badge.className = "badge bad";
      this.badge.textContent = `✖ ${err.message}`;
    }
  }

  follow() {
    this.seq = null;
    this.liveBtn.classList.add("active");
    this.showSeq(this.head);
    history.replaceState(null, "", runLink(this.runId));
  }

  setSeq(seq, { from } = {}) {
    if (!Number.isFinite(seq)) return;
    seq = Math.max(0, Math.min(this.head, Math.round(seq)));
    this.seq = seq;
    this.liveBtn.classList.remove("active");
    this.showSeq(seq, from);
    // The address follows, once the control rests (replaceState costs a layout).
    clearTimeout(this.addressTimer);
    this.addressTimer = setTimeout(() => {
      if (this.seq !== null && !this.closed) history.replaceState(null, "", runLink(this.runId, this.seq));
    }, 150);
  }

  showSeq(seq, from) {
    this.slider.value = String(seq);
    this.seqInput.value = String(seq);
    this.diffB.value = String(seq);
    this.asOf.textContent = this.seq === null ? `live at seq ${seq}` : `as of seq ${seq}`;
    // The state is asked for first: the server answers in order, and the timeline's pages
    // for the rows now in view can wait behind it.
    this.loadState(seq);
    if (seq >= 1) this.timeline.select(seq, { notify: false, scroll: from !== "timeline" });
    if (seq >= 1) this.loadRecord(seq);
  }

  async loadRecord(seq) {
    const t = await this.timeline.load(seq);
    if (t && (this.seq ?? this.head) === seq) clear(this.panels.record, recordPanel(t));
  }

  // One state request at a time; the newest seq asked for is fetched when it returns, so a
  // dragged slider or a fast live run shows states as fast as the server folds them and
  // always ends on the last one asked for.
  loadState(seq) {
    this.wantState = seq;
    if (!this.stateBusy) this.fetchState();
  }

  async fetchState() {
    const seq = this.wantState;
    this.stateBusy = true;
    try {
      const request = api.state(this.runId, seq);
      this.timeline.after(request);
      const out = await request;
      if (this.closed) return;
      this.lastState = out;
      clear(this.panels.state, statePanel(this.runId, out));
      clear(this.gauges, gauges(out.state));
      clear(this.agents, supervisionTree(this.runId, out.state));
    } catch (err) {
      toast(`state at ${seq}: ${err.message}`);
    } finally {
      this.stateBusy = false;
      this.resolveShown();
    }
    if (!this.closed && this.wantState !== seq) this.fetchState();
  }

  mark() {
    this.diffA.value = String(this.seq ?? this.head);
    toast(`diff from seq ${this.diffA.value}`, "ok");
  }

  async diff() {
    const a = Number(this.diffA.value || 0);
    const b = Number(this.diffB.value || this.head);
    try {
      const changes = await api.diff(this.runId, a, b);
      clear(this.diffOut, h("p", { class: "diff-summary" }, `${changes.length} paths differ between seq ${a} and seq ${b}`), diffPanel(changes));
    } catch (err) {
      clear(this.diffOut, h("p", { class: "error" }, err.message));
    }
    this.show("diff");
  }

  async fork() {
    const at = this.seq ?? this.head;
    try {
      const run = await api.fork(this.runId, at);
      toast(`forked ${this.runId} at ${at}: ${run.id}`, "ok");
      location.hash = runLink(run.id);
    } catch (err) {
      toast(`fork failed: ${err.message}`);
    }
  }

  async resume() {
    try {
      await api.resume(this.runId);
      toast(`resumed ${this.runId}`, "ok");
      this.follow();
      await this.refreshRun();
    } catch (err) {
      toast(`resume failed: ${err.message}`);
    }
  }
}
