// The status page: polls v1/status and redraws. No framework, no build step, no CDN.
// Every URL is relative to the page, which DC/OS serves under /service/<name>/.
"use strict";

const STATUSES = {
  COMPLETE: "done",
  STARTED: "running",
  STARTING: "starting",
  PREPARED: "waiting for an offer",
  PENDING: "not started",
  WAITING: "waiting (slot or operator)",
  DELAYED: "failed, retrying later",
  ERROR: "error",
  FORCED: "force-completed by an operator (its task may never have run)",
};
const PARAMS = new URLSearchParams(location.search);
const REFRESH_MS = 1000 * Number(PARAMS.get("refresh") || 2);
// The table shows one page of agents (v1/status answers at most 500 phases): ?offset=N
// (and ?limit=M for a shorter page).
const PAGE = new URLSearchParams({ offset: String(Math.max(0, Number(PARAMS.get("offset")) || 0)) });
if (PARAMS.get("limit")) PAGE.set("limit", PARAMS.get("limit"));

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  Object.entries(attrs).forEach(([key, value]) => node.setAttribute(key, value));
  children.forEach((child) => node.append(child));
  return node;
}

function renderConditions(summary) {
  const conditions = [
    ["Available", summary.available],
    ["Progressing", summary.progressing],
    ["Degraded", summary.degraded],
  ];
  document.getElementById("conditions").replaceChildren(
    ...conditions.map(([name, on]) =>
      el("span", { class: `condition ${name}${on ? " on" : ""}`, title: `${name}: ${on}` },
        name))
  );
}

// An agent holding a restart slot by hostname, with its ID where two agents share the name
// (as `calico-dcos status` and `local` show it: display.holder_labels).
function holderLabel(id, phases) {
  const phase = phases.find((p) => p.id === id);
  if (!phase || phase.name === id) return id;
  const sharing = phases.filter((p) => p.name === phase.name).length;
  return sharing > 1 ? `${phase.name} (${id})` : phase.name;
}

// The command that lifts an operator's interrupt: the whole plan's (name null), or an agent's
// own (as views.continue_words says it in the summary, the steps and the replies).
function continueCommand(name) {
  return name === null ? "calico-dcos plan continue" : `calico-dcos plan continue --phase ${name}`;
}

function renderOverview(doc) {
  const summary = doc.summary;
  const phases = doc.plan.phases;
  const total = doc.plan.phases_total ?? phases.length;
  const done = doc.plan.phases_complete ?? phases.filter((p) => p.status === "COMPLETE").length;
  let message = summary.message;
  if (summary.interrupted) message += ` — interrupted by an operator (${continueCommand(null)})`;
  document.getElementById("message").textContent = message;
  const bar = document.getElementById("progress");
  bar.setAttribute("aria-valuemax", String(total));
  bar.setAttribute("aria-valuenow", String(done));
  document.getElementById("progress-bar").style.width = total ? `${(100 * done) / total}%` : "0";
  // a holder replacing a running daemon, not restarting Docker or the agent, says so
  // (display.slots_line): "agent-3: replacing node"
  const replacing = summary.replacing || {};
  const restarting = summary.restarting.map((id) =>
    holderLabel(id, phases) + (replacing[id] ? `: replacing ${replacing[id]}` : ""));
  const holding = summary.restarting_count ?? restarting.length;
  const more = holding > restarting.length ? ` and ${holding - restarting.length} more` : "";
  document.getElementById("counts").textContent =
    `Restart slots: ${holding} of ${summary.budget} in use` +
    (restarting.length ? ` (${restarting.join(", ")}${more})` : "") +
    ` · plan ${doc.plan.status}, ${doc.plan.strategy}`;
  const list = (id, items) => document.getElementById(id)
    .replaceChildren(...items.map((text) => el("li", {}, text)));
  list("problems", summary.problems.concat(doc.plan.errors.filter(
    (e) => !summary.problems.includes(e))));
  list("warnings", doc.warnings);
  // agents gone from the cluster (unreachable, or removed): no phase, but not forgotten
  const gone = doc.plan.gone || [];
  const moreGone = (doc.plan.gone_total ?? gone.length) - gone.length;
  list("gone", gone.map((g) => `${g.label ?? g.name}: ${g.message}`).concat(
    moreGone > 0 ? [`… and ${moreGone} more agents gone from the cluster`] : []));
}

function renderLegend() {
  document.getElementById("legend").replaceChildren(
    ...Object.entries(STATUSES).map(([status, words]) =>
      el("li", {}, el("span", { class: `swatch ${status}` }), `${status} — ${words}`))
  );
}

// What the agent's row says now: its current step, or once every step is done, the steps
// done only by an operator's force-complete, in words (not only the cell's stripes), and the
// steps done with the installer's warning, in their words (whether and when an operator
// acknowledged it: "docker: done with a warning, acknowledged by an operator at …: …").
// An agent interrupted on its own says so first, done or not (`plan show`'s "COMPLETE
// (interrupted)"): a restart or new options would wait for its continue.
function currentMessage(phase) {
  const step = phase.steps.find((s) => s.status !== "COMPLETE");
  // an agent interrupted on its own says so, and how to resume it (views.interrupted_words)
  const held = phase.interrupted
    ? [`interrupted by an operator (${continueCommand(phase.name)})`] : [];
  if (step) {
    return held.concat(`${step.name}: ${step.message || STATUSES[step.status] || step.status}`)
      .join("; ");
  }
  const forced = phase.steps.filter((s) => s.forced);
  const generic = forced.filter((s) => forcedWords(s) === STATUSES.FORCED).map((s) => s.name);
  const said = (generic.length ? [`${generic.join(", ")}: ${STATUSES.FORCED}`] : []).concat(
    forced.filter((s) => forcedWords(s) !== STATUSES.FORCED)
      .map((s) => `${s.name}: ${forcedWords(s)}`));
  const warned = phase.steps.filter((s) => s.warning).map((s) => `${s.name}: ${s.message}`);
  return held.concat(said, warned).join("; ");
}

// Columns: every step name in the order first seen (the uninstall's phases differ).
function stepNames(plan) {
  return [...new Set(plan.phases.flatMap((phase) => phase.steps.map((s) => s.name)))];
}

// Mesos' command executor says this of every task that ends well (display.py SUCCESS_WORDS).
function shownMessage(step) {
  const success = step.status === "COMPLETE" && step.message === "Command exited with status 0";
  return success ? "" : step.message;
}

// A force-completed step's words: the legend's (its task may never have run), unless the
// plan knows its task runs (views.forced_step_words: "… did run and is still running").
function forcedWords(step) {
  return step.message && step.message !== "force-completed" ? step.message : STATUSES.FORCED;
}

// A step COMPLETE only by an operator's force-complete reads FORCED (display.py FORCED).
function stepCell(phase, name) {
  const step = phase.steps.find((s) => s.name === name);
  if (!step) return el("td", {});
  const status = step.forced ? "FORCED" : step.status;
  const words = `${step.name}: ${status}${shownMessage(step) ? " — " + shownMessage(step) : ""}`;
  // a screen reader reads the cell's words, the legend's meaning with them for FORCED
  const label = step.forced ? `${step.name}: ${forcedWords(step)}` : words;
  return el("td", {
    class: `step ${status}`,
    title: words,
    "aria-label": label,
    "data-step": step.name,
  }, status);
}

// "Agents 1001–2000 of 50000", with links to the pages around, when there is more than one.
function renderPager(plan) {
  const total = plan.phases_total ?? plan.phases.length;
  const first = plan.phases_offset ?? 0;
  const size = plan.phases_limit ?? plan.phases.length;
  const pager = document.getElementById("pager");
  if (total <= plan.phases.length) {
    pager.replaceChildren();
    return;
  }
  const link = (offset, text) => {
    const params = new URLSearchParams(location.search);
    params.set("offset", String(Math.max(0, offset)));
    return el("a", { href: `?${params}` }, text);
  };
  const parts = [`Agents ${first + 1}–${first + plan.phases.length} of ${total}`];
  if (first > 0) parts.push(" · ", link(first - size, "‹ previous"));
  if (first + plan.phases.length < total) parts.push(" · ", link(first + size, "next ›"));
  pager.replaceChildren(...parts);
}

function renderTable(plan) {
  const names = stepNames(plan);
  document.getElementById("head").replaceChildren(
    el("th", {}, "Agent"), ...names.map((n) => el("th", {}, n)),
    el("th", {}, "Agent status"), el("th", {}, "Now")
  );
  document.getElementById("rows").replaceChildren(
    ...plan.phases.map((phase) =>
      el("tr", { "data-agent": phase.id },
        el("td", { class: "agent" }, phase.name, el("small", {}, phase.id)),
        ...names.map((name) => stepCell(phase, name)),
        el("td", { class: "phase" }, phase.status),
        el("td", { class: "now" }, currentMessage(phase))))
  );
}

// The scheduler answered, but not with the page's document (503 while it waits for the
// leader lock or the IAM, with its reason): not the same as no answer at all.
class SchedulerAnswer extends Error {}

async function refresh() {
  try {
    const response = await fetch(`v1/status?${PAGE}`, { cache: "no-store" });
    if (!response.ok) {
      throw new SchedulerAnswer(`${response.status}: ${(await response.text()).trim()}`);
    }
    const doc = await response.json();
    document.getElementById("service").textContent = doc.service;
    document.title = `${doc.service}: ${doc.summary.message}`;
    renderConditions(doc.summary);
    renderOverview(doc);
    renderPager(doc.plan);
    renderTable(doc.plan);
    document.getElementById("updated").textContent =
      `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    document.getElementById("updated").textContent = error instanceof SchedulerAnswer
      ? `the scheduler answers ${error.message}; retrying`
      : `cannot reach the scheduler (${error.message}); retrying`;
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

renderLegend();
refresh();
