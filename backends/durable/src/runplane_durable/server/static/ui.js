// runplane's web UI: keeps the runs list and a run's page live. No build step, no library.
// Everything that came from a run (ids, names, text a model or a tool wrote) is written with
// textContent or as an attribute value, never parsed as HTML.
"use strict";

(function () {
  const base = document.body.dataset.base || "";

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function label(state) {
    return String(state).replace(/_/g, " ");
  }

  function age(seconds) {
    seconds = Math.max(0, seconds);
    if (seconds < 120) return Math.round(seconds) + " s";
    if (seconds < 7200) return Math.round(seconds / 60) + " min";
    if (seconds < 172800) return Math.round(seconds / 3600) + " h";
    return Math.round(seconds / 86400) + " d";
  }

  async function problemOf(response) {
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) return body.error.message;
    } catch (e) {
      // not JSON: say the status
    }
    return "HTTP " + response.status;
  }

  // -- the runs list ------------------------------------------------------------------------

  function runsPage(table) {
    const rows = document.getElementById("rows");
    const empty = document.getElementById("empty");
    const live = document.getElementById("live");
    let skew = 0; // server clock minus ours, in seconds

    function row(r) {
      const tr = el("tr");
      tr.dataset.id = r.id;
      const id = el("td", "id");
      const link = el("a", "", r.id);
      link.href = base + "/runs/" + r.path;
      id.append(link);
      const state = el("td", "state");
      const badge = el("span", "state " + r.state, label(r.label));
      badge.title = r.why;
      state.append(badge);
      const agent = el("td", "agent");
      const agentLink = el("a", "", r.agent);
      agentLink.href = base + "/?agent=" + encodeURIComponent(r.agent);
      agent.append(agentLink);
      const when = el("td", "age", r.age);
      when.dataset.created = r.created_at;
      tr.append(id, state, agent, when, el("td", "n turns", r.turns), el("td", "n tokens", r.tokens));
      return tr;
    }

    function tick() {
      const now = Date.now() / 1000 + skew;
      for (const cell of rows.querySelectorAll("td.age")) {
        cell.textContent = age(now - Number(cell.dataset.created));
      }
    }

    const stream = new EventSource(table.dataset.stream);
    stream.addEventListener("runs", (message) => {
      const snapshot = JSON.parse(message.data);
      skew = snapshot.now - Date.now() / 1000;
      rows.replaceChildren(...snapshot.runs.map(row));
      empty.hidden = snapshot.runs.length > 0;
      live.classList.remove("off");
      live.title = "updates as runs change";
      tick();
    });
    stream.addEventListener("problem", (message) => {
      live.classList.add("off");
      live.title = JSON.parse(message.data).error;
    });
    stream.onerror = () => live.classList.add("off");
    setInterval(tick, 1000);
  }

  // -- a run's page -------------------------------------------------------------------------

  function itemElement(i) {
    const li = el("li", "item " + i.kind);
    li.dataset.seq = i.seq;
    const head = el("div", "head");
    head.append(el("span", "time", i.time), " ", el("span", "title", i.title));
    for (const chip of i.chips) head.append(" ", el("span", "chip", chip));
    if (i.by) head.append(" ", el("span", "by", i.by));
    li.append(head);
    for (const b of i.blocks) {
      const block = el("div", "block " + b.tone);
      block.append(el("div", "label", b.label), el("pre", "", b.text));
      li.append(block);
    }
    return li;
  }

  function runPage(section) {
    const timeline = document.getElementById("timeline");
    const message = document.getElementById("message");
    const live = document.getElementById("live");
    const api = section.dataset.api;
    let lastSeq = Number(section.dataset.lastSeq);
    let finished = section.dataset.finished === "true";
    let stream = null;
    let loading = false;
    let again = false;

    function say(text, isError) {
      message.textContent = text;
      message.classList.toggle("error", Boolean(isError));
    }

    function show(run) {
      for (const field of section.querySelectorAll("[data-field]")) {
        const value = run[field.dataset.field];
        if (field.dataset.field === "label") {
          field.textContent = label(value);
          field.className = "state " + run.state;
          field.title = run.why;
        } else if (Array.isArray(value)) {
          field.textContent = value.join(", ");
        } else {
          field.textContent = value === null || value === undefined ? "" : String(value);
        }
      }
      document.getElementById("final-output").hidden = run.final_output === null;
      document.getElementById("run-error").hidden = run.error === null;
      document.getElementById("in-flight").hidden = run.in_flight.length === 0;
      document.getElementById("cancel-actions").hidden = run.finished;
      if (run.state === "awaiting_approval" || document.getElementById("approval-rows").children.length) {
        loadApprovals();
      }
    }

    async function refresh() {
      if (loading) {
        again = true;
        return;
      }
      loading = true;
      try {
        do {
          again = false;
          const response = await fetch(section.dataset.timeline + "?after=" + lastSeq, {
            credentials: "same-origin",
          });
          if (!response.ok) {
            say(await problemOf(response), true);
            return;
          }
          const body = await response.json();
          for (const i of body.items) {
            if (i.seq > lastSeq) {
              timeline.append(itemElement(i));
              lastSeq = i.seq;
            }
          }
          lastSeq = Math.max(lastSeq, body.run.last_seq);
          show(body.run);
          if (body.run.finished) finish();
        } while (again);
      } catch (e) {
        say("could not reach the server: " + e, true);
      } finally {
        loading = false;
      }
    }

    function finish() {
      finished = true;
      if (stream) {
        stream.close();
        stream = null;
      }
      live.hidden = true;
    }

    function listen() {
      stream = new EventSource(api + "/events/stream?after=" + lastSeq);
      // Events come typed (`event:` their type); the timeline is read again at each.
      for (const type of JSON.parse(section.dataset.eventTypes)) {
        stream.addEventListener(type, refresh);
      }
      stream.onmessage = refresh;
      stream.onopen = () => {
        live.hidden = false;
      };
      // The server ends the stream once the run is finished; the browser would reconnect.
      stream.onerror = () => {
        live.hidden = true;
        refresh();
      };
    }

    async function post(url, body) {
      const response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      if (!response.ok) throw new Error(await problemOf(response));
      return response.json();
    }

    for (const button of section.querySelectorAll("button.cancel")) {
      button.addEventListener("click", async () => {
        say("asking the run to stop…");
        try {
          const run = await post(api + "/cancel", { mode: button.dataset.mode });
          say(run.status === "cancelled" ? "cancelled" : "cancel requested: its process stops it");
        } catch (e) {
          say(e.message, true);
        }
        refresh();
      });
    }

    // -- approvals (GET/POST /api/v1/runs/{id}/approvals) --

    const approvals = document.getElementById("approvals");
    const approvalRows = document.getElementById("approval-rows");

    function decide(call, decision, always, text) {
      return async () => {
        say(decision === "approve" ? "approving…" : "rejecting…");
        try {
          const body = await post(api + "/approvals", {
            call_id: call,
            decision: decision,
            always: always.checked,
            message: text.value ? text.value : null,
          });
          drawApprovals(body.approvals);
          say(decision === "approve" ? "approved" : "rejected");
        } catch (e) {
          say(e.message, true);
        }
        refresh();
      };
    }

    function drawApprovals(list) {
      approvals.hidden = list.length === 0;
      approvalRows.replaceChildren(
        ...list.map((a) => {
          const tr = el("tr", "approval " + a.status);
          tr.dataset.callId = a.call_id;
          const args = el("td");
          args.append(el("pre", "", a.arguments));
          const actions = el("td", "decide");
          if (a.status === "pending") {
            const approve = el("button", "approve", "Approve");
            const reject = el("button", "reject", "Reject");
            const always = el("input");
            always.type = "checkbox";
            always.className = "always";
            const alwaysLabel = el("label", "", " always ");
            alwaysLabel.prepend(always);
            const text = el("input", "reason");
            text.placeholder = "message to the model (reject)";
            approve.type = reject.type = "button";
            approve.addEventListener("click", decide(a.call_id, "approve", always, text));
            reject.addEventListener("click", decide(a.call_id, "reject", always, text));
            actions.append(approve, " ", reject, alwaysLabel, text);
          }
          const by = a.decided_by ? a.decided_by + (a.always ? " (always)" : "") : "";
          tr.append(
            el("td", "tool", a.tool_name),
            args,
            el("td", "status", a.status),
            el("td", "decided-by", by),
            el("td", "policy", a.policy || ""),
            actions,
          );
          return tr;
        }),
      );
    }

    async function loadApprovals() {
      try {
        const response = await fetch(api + "/approvals", { credentials: "same-origin" });
        if (!response.ok) {
          say("approvals: " + (await problemOf(response)), true);
          return;
        }
        drawApprovals((await response.json()).approvals);
      } catch (e) {
        say("could not reach the server: " + e, true);
      }
    }

    if (section.querySelector("#run-state").classList.contains("awaiting_approval")) {
      loadApprovals();
    }
    if (!finished) {
      listen();
      // A state can change with no event (a dead process's lease expiring: orphaned).
      setInterval(() => {
        if (!finished) refresh();
      }, 5000);
    }
  }

  const table = document.getElementById("runs");
  if (table) runsPage(table);
  const section = document.getElementById("run");
  if (section) runPage(section);
})();
