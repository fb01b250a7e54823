// The timeline: every transition of a run, one row each, colour-coded by kind. Virtualised:
// only the rows in view exist in the DOM, and transitions are fetched a page at a time as they
// scroll into view, so a run of 100,000 transitions costs what a screenful does. Rendering
// never reads layout (the scroll position and the height are kept from the scroll event and a
// ResizeObserver) and keeps the rows that did not change, so a live run at 1,000
// transitions/s costs a few new rows a frame, not a forced layout and a screenful of nodes.

import { api } from "./api.js";
import { h, clear } from "./dom.js";
import { category, summary } from "./kinds.js";

const PAGE = 500;
const KEEP_PAGES = 40;
const OVERSCAN = 10;

export class Timeline {
  constructor(runId, { onSelect, rowHeight = 24 }) {
    this.runId = runId;
    this.onSelect = onSelect;
    this.rowHeight = rowHeight;
    this.head = 0;
    this.selected = null;
    this.pages = new Map(); // page index -> array of transitions (or a pending promise)
    this.gate = null; // a request the page fetches wait for (the state panel's, first)
    this.shown = new Map(); // seq -> { el, key }: the rows in the DOM
    this.top = 0; // scrollTop, as last seen or set
    this.viewH = 0; // the viewport's height, from the ResizeObserver
    this.rows = h("div", { class: "tl-rows" });
    this.spacer = h("div", { class: "tl-spacer" }, this.rows);
    this.el = h(
      "div",
      {
        class: "timeline",
        tabindex: "0",
        role: "listbox",
        "aria-label": "Transitions (arrow keys move, Home/End jump, PageUp/PageDown scroll)",
        onscroll: () => { this.top = this.el.scrollTop; this.render(); },
        onkeydown: (e) => this.key(e),
      },
      this.spacer,
    );
    this.resizer = new ResizeObserver((entries) => {
      const rh = this.rowHeight;
      const following = this.selected === null && this.top + this.viewH >= this.head * rh - 2;
      for (const e of entries) this.viewH = e.contentRect.height;
      this.top = this.el.scrollTop; // layout is done here: reading it costs nothing
      if (following) this.setTop(this.head * rh - this.viewH);
      this.render();
    });
    this.resizer.observe(this.el);
  }

  destroy() {
    this.resizer.disconnect();
  }

  setHead(head, { render = true } = {}) {
    if (head === this.head) return;
    const atBottom = this.top + this.viewH >= this.head * this.rowHeight - 2;
    this.head = head;
    this.spacer.style.height = `${head * this.rowHeight}px`;
    if (atBottom && this.selected === null) this.setTop(head * this.rowHeight - this.viewH);
    if (render) this.render();
  }

  setTop(top) {
    top = Math.max(0, Math.min(top, this.head * this.rowHeight - this.viewH));
    if (top === this.top) return;
    this.top = top;
    this.el.scrollTop = top;
  }

  // A transition that arrived live: keep it, so the page holding it is never fetched.
  add(t, { render = true } = {}) {
    const index = Math.floor((t.seq - 1) / PAGE);
    let page = this.pages.get(index);
    if (!Array.isArray(page)) {
      if (page === undefined && (t.seq - 1) % PAGE === 0) {
        page = [];
        this.pages.set(index, page);
      } else {
        if (render && t.seq > this.head) this.setHead(t.seq);
        return; // its page is being fetched, or starts before this event: fetched on view
      }
    }
    page[(t.seq - 1) % PAGE] = t;
    if (!render) return;
    if (t.seq > this.head) this.setHead(t.seq);
    else this.render();
  }

  get(seq) {
    const page = this.pages.get(Math.floor((seq - 1) / PAGE));
    return Array.isArray(page) ? page[(seq - 1) % PAGE] : undefined;
  }

  async fetchPage(index) {
    if (this.pages.has(index)) return;
    const from = index * PAGE + 1;
    const promise = Promise.resolve(this.gate)
      .catch(() => null)
      .then(() => api.transitions(this.runId, { from, limit: PAGE }))
      .then((page) => {
        const rows = [];
        for (const t of page.items) rows[t.seq - from] = t;
        const existing = this.pages.get(index);
        if (Array.isArray(existing)) existing.forEach((t, i) => t && (rows[i] = t));
        this.pages.set(index, rows);
        if (page.head > this.head) this.setHead(page.head);
        this.evict(index);
        this.render();
      })
      .catch(() => this.pages.delete(index));
    this.pages.set(index, promise);
    return promise;
  }

  evict(keep) {
    if (this.pages.size <= KEEP_PAGES) return;
    const far = [...this.pages.keys()].sort((a, b) => Math.abs(b - keep) - Math.abs(a - keep));
    for (const index of far.slice(0, this.pages.size - KEEP_PAGES)) this.pages.delete(index);
  }

  // Page fetches start once ``request`` is answered (the state panel is what a move of the
  // time-travel control is for; the rows around it can come a moment later).
  after(request) {
    this.gate = request;
  }

  // The transition at seq, fetched when not loaded.
  async load(seq) {
    const t = this.get(seq);
    if (t) return t;
    const index = Math.floor((seq - 1) / PAGE);
    const pending = this.pages.get(index);
    if (pending instanceof Promise) await pending;
    else await this.fetchPage(index);
    return this.get(seq) || api.transition(this.runId, seq);
  }

  render() {
    const rh = this.rowHeight;
    const first = Math.max(1, Math.floor(this.top / rh) + 1 - OVERSCAN);
    const last = Math.min(this.head, Math.ceil((this.top + this.viewH) / rh) + OVERSCAN);
    for (const [seq, row] of this.shown) {
      if (seq < first || seq > last) {
        row.el.remove();
        this.shown.delete(seq);
      }
    }
    const add = [];
    for (let seq = first; seq <= last; seq++) {
      const t = this.get(seq);
      if (!t) this.fetchPage(Math.floor((seq - 1) / PAGE));
      const selected = seq === this.selected;
      const key = (t ? 1 : 0) + (selected ? 2 : 0);
      const row = this.shown.get(seq);
      if (row && row.key === key) continue;
      const el = this.row(seq, t, selected);
      if (row) row.el.replaceWith(el);
      else add.push(el);
      this.shown.set(seq, { el, key });
    }
    if (add.length) this.rows.append(...add);
    if (this.selected !== null) this.el.setAttribute("aria-activedescendant", `tl-${this.selected}`);
  }

  row(seq, t, selected) {
    const rh = this.rowHeight;
    return h(
      "div",
      {
        class: `tl-row${t ? " cat-" + category(t.kind) : " loading"}${selected ? " selected" : ""}`,
        id: `tl-${seq}`,
        role: "option",
        "aria-selected": selected ? "true" : "false",
        dataset: { seq: String(seq), kind: t ? t.kind : "" },
        style: { top: `${(seq - 1) * rh}px`, height: `${rh}px` },
        onclick: () => this.select(seq, { scroll: false }),
      },
      h("span", { class: "tl-seq" }, seq),
      h("span", { class: "tl-tick" }, t ? `t${String(t.tick).padStart(2, "0")}` : ""),
      h("span", { class: "tl-agent" }, t ? t.agent || "kernel" : ""),
      h("span", { class: "tl-kind" }, t ? t.kind : "…"),
      h("span", { class: "tl-summary" }, t ? summary(t) : ""),
    );
  }

  select(seq, { scroll = true, notify = true, render = true } = {}) {
    if (this.head === 0) return;
    seq = Math.max(1, Math.min(this.head, seq));
    this.selected = seq;
    if (scroll) this.scrollTo(seq);
    if (render) this.render();
    if (notify) this.onSelect(seq);
  }

  scrollTo(seq) {
    const rh = this.rowHeight;
    const top = (seq - 1) * rh;
    if (top < this.top) this.setTop(top);
    else if (top + rh > this.top + this.viewH) this.setTop(top + rh - this.viewH);
  }

  key(e) {
    const visible = Math.max(1, Math.floor(this.viewH / this.rowHeight) - 1);
    const at = this.selected ?? this.head;
    const moves = {
      ArrowDown: at + 1, ArrowUp: at - 1, j: at + 1, k: at - 1,
      PageDown: at + visible, PageUp: at - visible, Home: 1, End: this.head,
    };
    if (e.key in moves && !e.altKey && !e.ctrlKey && !e.metaKey) {
      e.preventDefault();
      this.select(moves[e.key]);
    }
  }
}
