// actorq dashboard: fills each page from its JSON API and keeps it live from the
// event stream. Data is only ever set as text (textContent), never as HTML.
"use strict";

const body = document.body;
const PAGE = body.dataset.page;
const CSRF = body.dataset.csrf || "";
const CAN_ACT = body.dataset.canAct === "1";

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function showError(message) {
  const box = document.getElementById("error");
  if (!box) return;
  box.textContent = message || "";
  box.hidden = !message;
}

async function api(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

async function act(path, payload) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json", "x-actorq-csrf": CSRF },
    body: JSON.stringify(payload || {}),
  });
  const data = await response.json();
  if (!response.ok) {
    showError(data.error || response.statusText);
    throw new Error(data.error || response.statusText);
  }
  showError("");
  return data;
}

function when(ts) {
  if (ts === null || ts === undefined || ts === "") return "-";
  const d = typeof ts === "number" ? new Date(ts * 1000) : new Date(ts);
  return d.toLocaleString();
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + (s % 60) + "s";
  return Math.floor(s / 3600) + "h" + Math.floor((s % 3600) / 60) + "m";
}

function mb(n) {
  return n === undefined || n === null ? "-" : (n / 1048576).toFixed(0) + " MB";
}

function row(cells) {
  const tr = el("tr");
  for (const cell of cells) {
    const td = el("td");
    if (cell instanceof Node) td.appendChild(cell);
    else td.textContent = cell === null || cell === undefined ? "-" : String(cell);
    tr.appendChild(td);
  }
  return tr;
}

function fill(tableId, rows, empty) {
  const tbody = document.querySelector("#" + tableId + " tbody");
  tbody.replaceChildren(...rows);
  if (!rows.length && empty) {
    const tr = el("tr", null, { class: "empty" });
    const td = el("td", empty);
    td.colSpan = 20;
    tr.appendChild(td);
    tbody.appendChild(tr);
  }
}

function button(label, onClick, attrs) {
  const b = el("button", label, attrs);
  b.disabled = !CAN_ACT;
  b.addEventListener("click", async (event) => {
    event.preventDefault();
    try {
      await onClick();
    } catch (err) {
      showError(err.message);
    }
  });
  return b;
}

function link(href, text) {
  return el("a", text, { href: href });
}

function jobLink(id) {
  return link("/jobs/" + encodeURIComponent(id), id);
}

// -- live events --------------------------------------------------------------------

const listeners = [];

function live(fn) {
  listeners.push(fn);
}

function connect() {
  const badge = document.getElementById("live");
  const source = new EventSource("/api/events");
  source.addEventListener("overview", (event) => {
    const data = JSON.parse(event.data);
    badge.textContent = "live";
    badge.className = "live on";
    for (const fn of listeners) fn(data);
  });
  source.onerror = () => {
    badge.textContent = "reconnecting…";
    badge.className = "live off";
  };
}

// -- pages --------------------------------------------------------------------------

function queueRows(queues, withPurge) {
  return queues.map((q) => {
    const cells = [
      q.queue, q.pending, q.in_flight, q.redelivered, q.workers,
      Number(q.jobs_per_s).toFixed(1), age(q.oldest_pending_age),
    ];
    if (withPurge) {
      cells.push(button("Purge", async () => {
        const typed = window.prompt(
          "Remove every waiting job of queue " + q.queue + "? Type the queue's name to confirm.");
        if (typed !== q.queue) return;
        const done = await act("/api/queues/" + encodeURIComponent(q.queue) + "/purge",
          { confirm: typed });
        showError("");
        window.alert("removed " + done.removed + " job(s)");
        await pages.queues();
      }, { class: "danger", "data-queue": q.queue }));
    }
    return row(cells);
  });
}

function renderOverview(data) {
  if (data.error) return showError(data.error);
  const counts = data.status_counts || {};
  document.getElementById("rate").textContent = Number(data.jobs_per_s || 0).toFixed(1);
  for (const status of ["succeeded", "failed", "running"]) {
    document.getElementById("count-" + status).textContent = counts[status] || 0;
  }
  document.getElementById("dead-count").textContent = data.dead_letters;
  const p = data.processes;
  document.getElementById("procs").textContent =
    p.running + " running" + (p.lost ? ", " + p.lost + " lost" : "");
  document.getElementById("leader").textContent = data.scheduler_leader || "none";
  document.getElementById("nats").textContent =
    (data.nats.connected ? "connected to " : "disconnected from ") + data.nats.url;
  const problems = [];
  if (!data.nats.connected) problems.push("NATS disconnected");
  if (p.lost) problems.push(p.lost + " process(es) lost");
  if (!data.scheduler_leader) problems.push("no scheduler leader");
  const health = document.getElementById("health");
  health.textContent = problems.length ? problems.join("; ") : "healthy";
  health.className = problems.length ? "bad" : "good";
  fill("queues-table", queueRows(data.queues, false), "no queues");
  fill("status-table", Object.entries(counts).map(([s, n]) => row([s, n])), "no job records");
}

function treeNode(node) {
  const li = el("li");
  const r = node.report || {};
  const line = el("span", null, { class: "node " + node.state });
  const label = node.kind === "supervisor" ? node.id + "/" : node.id;
  line.appendChild(el("strong", label));
  const facts = [node.kind, node.state];
  if (node.pid) facts.push("pid " + node.pid);
  facts.push("restarts " + node.restarts);
  if (node.kind !== "supervisor") {
    facts.push("up " + age(node.uptime));
    if (node.report) {
      facts.push("cpu " + Number(r.cpu_percent).toFixed(1) + "%", "rss " + mb(r.rss_bytes));
      if (r.role === "queue") facts.push("jobs " + r.processed + " active " + r.active_jobs);
      facts.push("reports " + r.state);
    }
  }
  line.appendChild(el("span", " " + facts.join(" · ")));
  if (node.last_exit) line.appendChild(el("span", " last exit: " + node.last_exit, { class: "muted" }));
  li.appendChild(line);
  if (node.children.length) {
    const ul = el("ul");
    for (const child of node.children) ul.appendChild(treeNode(child));
    li.appendChild(ul);
  }
  return li;
}

const pages = {
  async overview() {
    renderOverview(await api("/api/overview"));
    live(renderOverview);
  },

  async tree() {
    const draw = async () => {
      const data = await api("/api/tree");
      const box = document.getElementById("tree");
      const ul = el("ul", null, { class: "tree" });
      for (const t of data.trees) ul.appendChild(treeNode(t));
      box.replaceChildren(data.trees.length ? ul : el("p", "no published tree (is `actorq up` running?)"));
      fill("other-table", data.other.map((r) => row([
        r.pid, r.role, r.name || r.queue, r.state, Number(r.cpu_percent).toFixed(1) + "%",
        mb(r.rss_bytes), age(r.uptime),
      ])), "none");
    };
    await draw();
    live(() => draw().catch((e) => showError(e.message)));
  },

  async queues() {
    const data = await api("/api/queues");
    fill("queues-table", queueRows(data, true), "no queues");
  },

  async jobs() {
    const params = new URLSearchParams(window.location.search);
    const form = document.getElementById("job-filter");
    let page = Number(params.get("page") || 1);
    let seen = -1;
    form.q.value = params.get("q") || "";
    const draw = async () => {
      const query = new URLSearchParams({
        q: form.q.value, queue: params.get("queue") || "", status: params.get("status") || "",
        page: String(page), per_page: "50",
      });
      const data = await api("/api/jobs?" + query);
      const queueSel = document.getElementById("job-queue");
      const statusSel = document.getElementById("job-status");
      if (queueSel.options.length === 1) {
        for (const q of data.queues) queueSel.appendChild(el("option", q, { value: q }));
        queueSel.value = params.get("queue") || "";
      }
      const statuses = ["scheduled", "waiting", "queued", "running", "succeeded", "failed",
        "cancelled", "dead"];
      if (statusSel.options.length === 1) {
        for (const s of statuses) statusSel.appendChild(el("option", s, { value: s }));
        statusSel.value = params.get("status") || "";
      }
      fill("jobs-table", data.rows.map((r) => row([
        jobLink(r.id), r.queue, r.function, el("span", r.status, { class: "status " + r.status }),
        r.attempts, when(r.enqueued_at), when(r.finished_at), r.error,
      ])), data.ready ? "no jobs match" : "loading the job index…");
      const pagesTotal = Math.max(1, Math.ceil(data.total / data.per_page));
      document.getElementById("jobs-summary").textContent =
        data.total + " job(s)" + (data.ready ? "" : " (index still loading)");
      document.getElementById("page-no").textContent = "page " + page + " of " + pagesTotal;
      document.getElementById("prev-page").disabled = page <= 1;
      document.getElementById("next-page").disabled = page >= pagesTotal;
    };
    const go = () => {
      params.set("q", form.q.value);
      params.set("queue", form.queue.value);
      params.set("status", form.status.value);
      params.set("page", String(page));
      window.history.replaceState(null, "", "?" + params);
      return draw();
    };
    form.addEventListener("submit", (e) => { e.preventDefault(); page = 1; go(); });
    document.getElementById("prev-page").addEventListener("click", () => { page -= 1; go(); });
    document.getElementById("next-page").addEventListener("click", () => { page += 1; go(); });
    await draw();
    // Follow new records on the first page only, at most every 3 s: a browser left
    // open on the jobs page costs the server one query per 3 s, not one per change.
    let last = 0;
    live((data) => {
      const now = Date.now();
      if (data.version !== seen && page === 1 && now - last >= 3000) {
        seen = data.version;
        last = now;
        draw().catch((e) => showError(e.message));
      }
    });
  },

  async job() {
    const id = body.dataset.jobId;
    const path = "/api/jobs/" + encodeURIComponent(id);
    const final = ["succeeded", "failed", "cancelled", "dead"];
    let status = "";
    const draw = async () => {
      const data = await api(path);
      status = data.status;
      const rec = data.record || {};
      const queued = data.queued || {};
      const facts = [
        ["Status", data.status],
        ["Queue", rec.queue || queued.queue],
        ["Function", rec.function || queued.function],
        ["Arguments", queued.arguments || (data.dead_letter || {}).arguments || "(not stored once the job has run)"],
        ["Attempts", rec.attempts],
        ["Enqueued", when(rec.enqueued_at || queued.enqueued_at)],
        ["Started", when(rec.started_at)],
        ["Finished", when(rec.finished_at)],
        ["Run time", rec.started_at && rec.finished_at ? (rec.finished_at - rec.started_at).toFixed(3) + " s" : "-"],
        ["Worker", rec.worker],
        ["Result", data.record ? rec.result || "none" : "-"],
        ["Metadata", JSON.stringify(rec.metadata || queued.metadata || {})],
      ];
      fill("job-facts", facts.map(([k, v]) => row([k, v])));
      fill("job-history", (rec.history || []).map((h) => row([h.status, when(h.at)])), "no history");
      const err = rec.error;
      document.getElementById("job-error").textContent =
        err ? err.type + ": " + err.message + "\n\n" + err.traceback : "none";
      const dead = data.dead_letter;
      fill("job-dead", dead ? [row(["Reason", dead.reason]), row(["Detail", el("pre", dead.detail)]),
        row(["Failed", when(dead.failed_at)])] : [], "none");
      document.getElementById("requeue-job").disabled = !CAN_ACT || !dead;
    };
    document.getElementById("cancel-job").replaceWith(button("Cancel", async () => {
      if (!window.confirm("Cancel job " + id + "?")) return;
      await act(path + "/cancel");
      await draw();
    }, { id: "cancel-job" }));
    document.getElementById("requeue-job").replaceWith(button("Requeue", async () => {
      await act(path + "/requeue");
      await draw();
    }, { id: "requeue-job" }));
    await draw();
    // Live while the job can still change; a finished job's page stays quiet.
    live(() => {
      if (!final.includes(status)) draw().catch((e) => showError(e.message));
    });
  },

  async dead() {
    const draw = async () => {
      const data = await api("/api/dead");
      fill("dead-table", data.map((d) => {
        const box = el("input", null, { type: "checkbox", class: "pick", value: d.job_id || "" });
        const reason = el("details");
        reason.appendChild(el("summary", d.reason));
        reason.appendChild(el("pre", d.detail));
        const actions = el("span");
        actions.appendChild(button("Requeue", async () => {
          await act("/api/dead/" + encodeURIComponent(d.job_id) + "/requeue");
          await draw();
        }, { "data-requeue": d.job_id }));
        actions.appendChild(button("Delete", async () => {
          if (!window.confirm("Delete the dead letter of " + d.job_id + "? The job will not run.")) return;
          await act("/api/dead/" + encodeURIComponent(d.job_id) + "/delete");
          await draw();
        }, { class: "danger", "data-delete": d.job_id }));
        return row([box, d.job_id ? jobLink(d.job_id) : "-", d.queue, d.function, d.arguments,
          reason, when(d.failed_at), actions]);
      }), "no dead letters");
    };
    document.getElementById("dead-all").addEventListener("change", (e) => {
      for (const box of document.querySelectorAll("input.pick")) box.checked = e.target.checked;
    });
    document.getElementById("requeue-selected").replaceWith(button("Requeue selected", async () => {
      const ids = [...document.querySelectorAll("input.pick:checked")].map((b) => b.value);
      if (!ids.length) return;
      await act("/api/dead/requeue", { ids });
      await draw();
    }, { id: "requeue-selected" }));
    document.getElementById("requeue-all").replaceWith(button("Requeue all", async () => {
      if (!window.confirm("Requeue every dead letter?")) return;
      await act("/api/dead/requeue", { all: true });
      await draw();
    }, { id: "requeue-all" }));
    await draw();
  },

  async schedules() {
    const draw = async () => {
      const data = await api("/api/schedules");
      fill("schedules-table", data.map((s) => {
        const base = "/api/schedules/" + encodeURIComponent(s.name) + "/";
        const actions = el("span");
        const verb = s.paused ? "resume" : "pause";
        actions.appendChild(button(s.paused ? "Resume" : "Pause", async () => {
          await act(base + verb);
          await draw();
        }, { "data-schedule": s.name, "data-verb": verb }));
        actions.appendChild(button("Trigger now", async () => {
          const done = await act(base + "trigger");
          showError("");
          window.location.href = "/jobs/" + encodeURIComponent(done.job_id);
        }, { "data-schedule": s.name, "data-verb": "trigger" }));
        actions.appendChild(button("Delete", async () => {
          if (!window.confirm("Delete schedule " + s.name + "?")) return;
          await act(base + "delete");
          await draw();
        }, { class: "danger", "data-schedule": s.name, "data-verb": "delete" }));
        const plan = s.cron ? "cron " + s.cron + " (" + s.tz + ")" : "every " + s.every + "s";
        return row([s.name, s.queue, s.function, plan, s.paused ? "paused" : "active",
          s.runs + (s.max_runs ? " / " + s.max_runs : ""), when(s.last_run),
          s.next_runs.length ? when(s.next_runs[0]) : "-", actions]);
      }), "no schedules");
    };
    await draw();
  },

  async actors() {
    const data = await api("/api/actors");
    fill("actors-table", data.map((a) => row([
      a.name, a.processes.map((p) => p.pid + " (" + p.state + ")").join(", "),
      a.answers ? "yes" : "no", a.role, a.mailbox,
      a.mailbox_depth === null ? "-" : a.mailbox_depth,
      Object.entries(a.stats).map(([k, v]) => k + " " + v).join(" · ") || "-",
    ])), "no named actors report heartbeats");
  },
};

async function main() {
  connect();
  const page = pages[PAGE];
  if (!page) return;
  try {
    await page();
    body.dataset.ready = "1";
  } catch (err) {
    showError(err.message);
    body.dataset.ready = "error";
  }
}

main();
