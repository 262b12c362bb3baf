"""`calico-dcos status` and `calico-dcos plan …`: the operator's terminal view of a scheduler.

Both talk to the scheduler's HTTP API (`--url`, or $CALICO_DCOS_URL). The plan's mutating
commands send the API token (`--token-file`, or the token itself in $CALICO_DCOS_API_TOKEN)
when the scheduler is configured with one.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import click
import requests

from calico_dcos.core.views import acknowledge_words, interrupted_words
from calico_dcos.display import slots_line, step_status

DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT_SECONDS = 10.0


def scheduler_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """`--url` (or $CALICO_DCOS_URL) of every command: `http(s)://host[:port]`, checked here
    once so that a URL without its scheme is not left to requests ("No connection adapters
    were found"); `url_problem` says what is wrong and, when it can tell, the URL meant."""
    source = ctx.get_parameter_source(param.name)
    from_env = source == click.core.ParameterSource.ENVIRONMENT
    given = "CALICO_DCOS_URL=" if from_env else "--url "
    problem = url_problem(value)
    if problem is None:
        return value
    words, meant = problem
    fix = f" ({given}{meant})" if meant else f" (e.g. {given}{DEFAULT_URL})"
    raise click.BadParameter(f"{value!r}{words}{fix}", param=param)


_SCHEMES = ("http", "https")
# a scheme-like word and what follows it when that is not `://`: `http:/h`, `http//h`, `http:h`
_MISSPELLED_SEPARATOR = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)(?P<sep>:/*|/+)(?P<rest>.*)"
)


def url_problem(value: str) -> tuple[str, str] | None:
    """What is wrong with a scheduler URL: None when it is a good `http(s)://host[:port]`,
    else `(words, meant)`: words to follow the quoted value (`" has no scheme: add
    http://"`), and the URL it most likely meant, or "" when no single fix is sure (a
    wrong suggestion is worse than none). A scheme close to http or https (`htp`, `htps`,
    `hhtp`) with a malformed separator (`http:/h`, `http//h`, `http:h`) is read as that
    scheme; any other text before `:` is a host (`127.0.0.1:80/` gets `http://` added)."""
    if "://" not in value:
        match = _MISSPELLED_SEPARATOR.fullmatch(value)
        scheme = _close_scheme(match["scheme"]) if match else None
        if match and scheme:
            rest = match["rest"].lstrip("/")
            # `http:8080`: the host is missing, not only the slashes
            host_missing = match["sep"] == ":" and _is_port(rest)
            written = match["scheme"] + match["sep"]
            meant = "" if host_missing else _good(f"{scheme}://{rest}")
            return f": the scheme {written!r} is malformed: write {scheme}://HOST:PORT", meant
        meant = f"http://{value}"
        return " has no scheme: add http://", _good(meant)
    scheme, _, rest = value.partition("://")
    if scheme not in _SCHEMES:
        close = _close_scheme(scheme)
        if close:
            return f": the scheme {scheme!r} is misspelled", _good(f"{close}://{rest}")
        return ": the scheduler's API is http:// or https://", _good(f"http://{rest}")
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 (urlsplit checks the port when asked for it)
    except ValueError as exc:
        return f": {exc}", ""
    if not parts.hostname:  # `http:///h:1`: one slash too many, or no host at all
        return " has no host", _good(f"{scheme}://{rest.lstrip('/')}") if rest.strip("/") else ""
    return None


def _close_scheme(word: str) -> str | None:
    """`http` or `https` when `word` is one of them or a likely misspelling of one."""
    close = difflib.get_close_matches(word.lower(), _SCHEMES, n=1, cutoff=0.75)
    return close[0] if close else None


def _is_port(text: str) -> bool:
    """`8080`, `8080/`: what follows `host:` (so `http:8080` is a host named http)."""
    return bool(re.fullmatch(r"[0-9]+/?", text))


def _good(url: str) -> str:
    """`url` when it is itself a good scheduler URL, else "" (no suggestion)."""
    return url if url_problem(url) is None else ""


url_option = click.option(
    "--url",
    envvar="CALICO_DCOS_URL",
    default=DEFAULT_URL,
    show_default=True,
    callback=scheduler_url,
    help="The scheduler's API, http(s)://HOST:PORT ($CALICO_DCOS_URL).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")


def fetch(url: str, path: str) -> dict:
    """GET a JSON document; any failure ends the command with the reason (exit 1)."""
    try:
        response = requests.get(url.rstrip("/") + path, timeout=TIMEOUT_SECONDS)
    except requests.RequestException as exc:
        raise click.ClickException(unreachable_words(url, exc)) from None
    if response.status_code not in (200, 202, 417):
        raise click.ClickException(f"{path}: HTTP {response.status_code}: {response.text.strip()}")
    return response.json()


def unreachable_words(url: str, exc: Exception) -> str:
    """No scheduler there: say which URL was asked and how to name another."""
    return (
        f"cannot reach the scheduler at {url}: {exc}\n"
        "Is it running? Name its API with --url http://HOST:PORT or $CALICO_DCOS_URL "
        f"(default {DEFAULT_URL}; `calico-dcos local` prints its status page's URL)."
    )


TOKEN_ENV = "CALICO_DCOS_API_TOKEN"  # noqa: S105 (the variable's name, not a token)


def read_token(token_file: str | None) -> tuple[str | None, str]:
    """The API token and where it came from (`--token-file F`, or the token itself in
    $CALICO_DCOS_API_TOKEN); `(None, "")` when neither gives one."""
    if token_file:
        with open(token_file) as handle:
            return handle.read().strip() or None, f"the file {token_file} (--token-file)"
    token = os.environ.get(TOKEN_ENV, "").strip()
    return (token, f"${TOKEN_ENV}") if token else (None, "")


def token_as_a_path(token: str) -> str | None:
    """When $CALICO_DCOS_API_TOKEN holds a file's path instead of the token (it starts with
    `/`, `./`, `../` or `~`, or names an existing file): the path as a message may show it
    (itself when it contains '/' or '.', else "", so that a token which happens to name a
    file is never echoed: the secret options' rule, `options.secret_path_shown`); None when
    it does not look like a path."""
    from calico_dcos.options import secret_path_shown  # here: jsonschema costs 0.2 s to load

    written_as_path = token.startswith(("/", "./", "../", "~"))
    if not written_as_path and not os.path.isfile(token):
        return None
    return token if secret_path_shown(token) else ""


def post(
    url: str, path: str, params: Mapping[str, str], token: str | None, source: str = ""
) -> dict:
    """POST to the API with the token, if any; a 401 says whether a token is missing or was
    refused (and where the refused one came from, never the token itself)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = requests.post(
            url.rstrip("/") + path, params=params, headers=headers, timeout=TIMEOUT_SECONDS
        )
    except requests.RequestException as exc:
        raise click.ClickException(unreachable_words(url, exc)) from None
    if response.status_code == 401 and token and source == f"${TOKEN_ENV}":
        path = token_as_a_path(token)
        if path is not None:
            raise click.ClickException(
                f"the scheduler refused the API token from ${TOKEN_ENV}: {TOKEN_ENV} holds the "
                f"token itself, not a file's path: use --token-file "
                + (path or "with the path of the file it names")
            )
    if response.status_code == 401 and token:
        raise click.ClickException(
            f"the scheduler refused the API token from {source or 'the command line'}: it is "
            "not the one in the scheduler's service.api_token_file; give that token"
        )
    if response.status_code == 401:
        raise click.ClickException(
            "the scheduler needs an API token (the one in its service.api_token_file): "
            f"--token-file FILE (a file holding it), or the token itself in ${TOKEN_ENV}"
        )
    if response.status_code != 200:
        raise click.ClickException(f"HTTP {response.status_code}: {response.text.strip()}")
    return response.json()


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


def summary_lines(doc: Mapping) -> list[str]:
    """The rollout in words: conditions, progress, restart slots (their holders by hostname,
    as on the status page), problems, warnings."""
    summary = doc["summary"]
    lines = [
        f"{doc['service']}: {summary['message']}",
        f"Available: {yes_no(summary['available'])}   "
        f"Progressing: {yes_no(summary['progressing'])}   "
        f"Degraded: {yes_no(summary['degraded'])}",
        slots_line(summary, doc["plan"]),
    ]
    if summary.get("interrupted"):
        lines.append(f"Interrupted: {interrupted_words(None)}.")
    lines += [f"Problem: {problem}" for problem in summary["problems"]]
    lines += [f"Warning: {warning}" for warning in doc.get("warnings", [])]
    return lines


def plan_table(plan: Mapping) -> list[str]:
    """One row per phase (agent), one column per step, then the phase's status; a step
    COMPLETE only by an operator's force-complete reads FORCED (`display.step_status`)."""
    phases = plan["phases"]
    if not phases:
        return ["(no agents in the plan yet)"]
    steps = [step["name"] for step in phases[0]["steps"]]
    rows = [["AGENT", *(name.upper() for name in steps), "STATUS"]]
    for phase in phases:
        cells = [step_status(s) for s in phase["steps"]]
        interrupted = " (interrupted)" if phase.get("interrupted") else ""
        rows.append([phase["name"], *cells, phase["status"] + interrupted])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]  # fmt: skip


def messages(plan: Mapping) -> list[str]:
    """What each unfinished step is saying, for a person to act on, and what each step done
    with the installer's warning says (`"warning": true`: done, not as the options want;
    with when an operator acknowledged it, if one did); why an interrupted agent waits; and
    each agent gone from the cluster, since when (`"gone"`: not a phase, since nothing can
    run there, but not forgotten)."""
    lines = []
    for phase in plan["phases"]:
        if phase.get("interrupted") and phase["status"] != "COMPLETE":
            lines.append(interrupted_words(phase["name"]))
        for step in phase["steps"]:
            if (step["status"] != "COMPLETE" or step.get("warning")) and step["message"]:
                line = f"{phase['name']} {step['name']}: {step['message']}"
                if step.get("warning") and not step.get("warning_acknowledged"):
                    line += f"; {acknowledge_words(phase['name'], step['name'])}"
                lines.append(line)
    gone = plan.get("gone", [])
    lines += [f"{agent.get('label', agent['name'])}: {agent['message']}" for agent in gone]
    more = plan.get("gone_total", len(gone)) - len(gone)
    if more > 0:
        lines.append(f"… and {more} more agents gone from the cluster")
    return lines


@click.command()
@url_option
@json_option
def status(url: str, as_json: bool) -> None:
    """Show the rollout: conditions, progress, and each agent's steps."""
    doc = fetch(url, "/v1/status")
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    lines = summary_lines(doc) + [""] + plan_table(doc["plan"]) + messages(doc["plan"])
    click.echo("\n".join(lines + page_note(doc["plan"])))


@click.group()
def plan() -> None:
    """Show or steer the deploy plan (one phase per agent, one step per chain step)."""


@plan.command()
@url_option
@json_option
def show(url: str, as_json: bool) -> None:
    """Print the plan. Exit status: 0 complete, 3 in progress, 4 with errors (a step
    stopped: ERROR), 5 degraded (a step keeps failing, a launch stalled, a step is done
    with a warning no operator acknowledged, or an agent is unreachable), 6 waiting for
    the operator (interrupted: nothing moves until `calico-dcos plan continue`, or
    `--phase <agent>` for an agent interrupted on its own); 1 when the scheduler cannot be
    asked, 2 for a wrong command line (as every command). 0 and 3: nothing for a person to do."""
    doc = fetch(url, "/v1/plan")
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        lines = plan_header(doc) + plan_table(doc) + messages(doc) + doc["errors"]
        click.echo("\n".join(lines + page_note(doc)))
    raise SystemExit(plan_exit_status(doc))


def plan_header(plan: Mapping) -> list[str]:
    """`plan show`'s first lines: the plan's status, Degraded, the steps force-completed (a
    FORCED step is easy to miss in a long table) and those whose warning an operator
    acknowledged, then the summary's message."""
    degraded = yes_no(plan.get("degraded", False))
    head = f"deploy ({plan['strategy']}): {plan['status']}   Degraded: {degraded}"
    forced = plan.get("forced_steps", 0)
    if forced:
        head += f"   Forced: {forced} step{'s' if forced > 1 else ''}"
    acknowledged = plan.get("acknowledged_warnings", 0)
    if acknowledged:
        head += f"   Acknowledged: {acknowledged} warning{'s' if acknowledged > 1 else ''}"
    lines = [head, plan["message"]] if plan.get("message") else [head]
    if plan.get("interrupted"):
        lines.append(f"Interrupted: {interrupted_words(None)}.")
    return lines


def page_note(plan: Mapping) -> list[str]:
    """A line saying which agents the answer held, when it held only a page of them (the
    API answers at most `operator_api.PAGE_LIMIT` phases; the status and errors are whole)."""
    total, shown = plan.get("phases_total", len(plan["phases"])), len(plan["phases"])
    if total <= shown:
        return []
    first = plan.get("phases_offset", 0) + 1
    return [f"(agents {first}-{first + shown - 1} of {total}; the API pages them: ?offset=)"]


# `plan show`'s exit statuses (README "Operating it"): 0 and 3 need no one; 4, 5 and 6 wait
# for a person. 0, 3 and 4 are dcos-commons' three answers to GET /v1/plans/<plan> (200
# complete, 202 in progress, 417 with errors: mesosphere/dcos-commons sdk/scheduler/.../http/
# queries/PlansQueries.java `get`), whose own CLI exits 0 for all three (cli/queries/plan.go
# `Status`). 5 and 6 are Kubernetes' conditions (the summary's Degraded, Progressing false),
# as `kubectl rollout status` fails once a rollout stops progressing, not while it waits
# (kubernetes/kubectl pkg/polymorphichelpers/rollout_status.go: "exceeded its progress
# deadline").
EXIT_COMPLETE, EXIT_IN_PROGRESS, EXIT_ERRORS, EXIT_DEGRADED, EXIT_WAITING = 0, 3, 4, 5, 6


def plan_exit_status(doc: Mapping) -> int:
    """`plan show`'s exit status for a plan document (`/v1/plan`), so that a script can tell
    "still going" (3) and "done" (0) from "needs a person" (4, 5, 6), and all of them from 1
    (the scheduler could not be asked) and 2 (click's usage errors). In this order: 4 errors
    (a step ERROR: stopped, waits for the operator), 5 Degraded (`degraded`: a step failing
    again and again, a launch stalled, a step done with a warning no operator acknowledged,
    an agent unreachable; also when every step is COMPLETE), 0 COMPLETE, 6 not progressing
    (`progressing` false: the plan or every agent not done is interrupted), 3 in progress.
    A scheduler of a version without `degraded` or `progressing` reads as not degraded and
    progressing."""
    if doc["errors"] or doc["status"] == "ERROR":
        return EXIT_ERRORS
    if doc.get("degraded"):
        return EXIT_DEGRADED
    if doc["status"] == "COMPLETE":
        return EXIT_COMPLETE
    agents = doc.get("phases_total", len(doc.get("phases", ())))
    if doc.get("progressing") is False and agents:  # none yet: it waits for their offers
        return EXIT_WAITING
    return EXIT_IN_PROGRESS


def mutating(name: str, help_text: str, needs_step: bool) -> click.Command:
    """One plan command: POST /v1/plan/<name> with its phase and step."""

    @click.command(name=name, help=help_text)
    @url_option
    @click.option(
        "--token-file",
        type=click.Path(dir_okay=False, exists=True),
        default=None,
        help="A file holding the API token (the token in the scheduler's "
        "service.api_token_file). Without it, the token itself is taken from the environment "
        "variable CALICO_DCOS_API_TOKEN (which holds the token, not a path).",
    )
    @click.option("--phase", required=needs_step, help="Agent hostname or ID.")
    @click.option("--step", required=needs_step, help="Step name (etcd-proxy, docker, …).")
    def command(
        url: str, token_file: str | None, phase: str | None, step: str | None = None
    ) -> None:
        params = {k: v for k, v in (("phase", phase), ("step", step)) if v}
        answer = post(url, f"/v1/plan/{name}", params, *read_token(token_file))
        click.echo(answer.get("message", json.dumps(answer)))

    if not needs_step:
        command.params = [p for p in command.params if p.name != "step"]
    return command


plan.add_command(mutating("interrupt", "Stop new launches (everywhere, or on --phase).", False))
plan.add_command(mutating("continue", "Resume after interrupt (everywhere, or --phase).", False))
plan.add_command(
    mutating(
        "restart",
        "Run --step again on the agent --phase: a task of it not yet RUNNING is killed and "
        "launched again, a running daemon is replaced, a running one-shot runs again once it "
        "ends.",
        True,
    )
)
plan.add_command(
    mutating(
        "force-complete",
        "Count --step on --phase as done with the current options: a task of it not yet "
        "RUNNING is killed; a running one is left alone; a step done already is left as it "
        "is. The step then shows FORCED, not done (plan show, status, the page; the summary "
        "counts it), since its task may never have run, until it runs again: `calico-dcos "
        "plan restart --phase P --step S` runs it now, new options that change it do too. "
        "Of a step done with the installer's warning (someone else's setting left as it is), "
        "it acknowledges the warning: the step stays done with the warning's words, marked "
        "acknowledged and when, and no longer makes the plan Degraded, until it runs again.",
        True,
    )
)
