"""The framework's options: loaded from a file and the environment, checked against one schema.

`config/options.schema.json` is the single source of truth (Universe's `config.json` is
derived from it: `scripts/universe.py`). Options come from a JSON or YAML file, then
`CALICO_<SECTION>_<KEY>` environment variables (the Marathon app passes every option this
way), then the schema's defaults. Every problem is reported at once, each with the option's
dotted path, so that an operator fixes a bad options file in one go, before the scheduler
registers with Mesos.
"""

from __future__ import annotations

import copy
import difflib
import errno
import functools
import json
import math
import pathlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import yaml

from calico_dcos import matrix, option_rules

SCHEMA_PATH = pathlib.Path(__file__).with_name("options.schema.json")
ENV_PREFIX = "CALICO_"
_INTEGER = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


class OptionsError(Exception):
    """Invalid options: a list of `(dotted path, message)` pairs, sorted by path; the path is
    the name given when that name is no option (a misspelled variable or file key)."""

    def __init__(self, errors: list[tuple[str, str]], pending: int = 0) -> None:
        self.errors = sorted(errors)
        # checks that read an option refused here, so could not run: they run once it is fixed
        self.pending = pending
        lines = [f"{path}: {message}" if path else message for path, message in self.errors]
        super().__init__("\n".join(lines + self._pending_lines()))

    def _pending_lines(self) -> list[str]:
        if not self.pending:
            return []
        checks = "check runs" if self.pending == 1 else "checks run"
        return [
            f"fix the errors above, then {self.pending} more {checks} (they read options "
            "refused above, so cannot run yet)"
        ]

    def lines(self) -> list[str]:
        """For the operator, each line starting with what to look at: `invalid option PATH:
        message` for a known option (or section); `unknown environment variable NAME: …` or
        `unknown option PATH: …` for a name that is no option (a misspelling: the message says
        which option is closest); the message alone when no one option is at fault (an options
        file that cannot be read)."""
        return [_line(path, message) for path, message in self.errors] + self._pending_lines()


def _line(path: str, message: str) -> str:
    if not path:
        return message
    if path.startswith(ENV_PREFIX):
        return f"unknown environment variable {path}: {message}"
    section, _, key = path.partition(".")
    sections = schema()["properties"]
    known = section in sections and (not key or key in sections[section]["properties"])
    return f"{'invalid' if known else 'unknown'} option {path}: {message}"


@functools.cache
def schema() -> dict:
    """The options schema (draft-04), read once."""
    return json.loads(SCHEMA_PATH.read_text())


class Options(Mapping):
    """A read-only view of complete, valid options: `options["etcd"]["proxy_mode"]`."""

    def __init__(self, raw: Mapping[str, Mapping[str, Any]]) -> None:
        self._raw = copy.deepcopy(dict(raw))
        # step name -> `Step.fingerprint` of these options: read-only, so it never changes
        self.fingerprints: dict[str, str] = {}

    def __getitem__(self, section: str) -> Mapping[str, Any]:
        return MappingProxyType(self._raw[section])

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    @property
    def raw(self) -> dict[str, dict[str, Any]]:
        """A plain copy with every option present, for JSON output and fingerprints."""
        return copy.deepcopy(self._raw)

    def __repr__(self) -> str:
        return f"Options({redacted(self)!r})"


def option_names() -> list[str]:
    """Every option as `section.key`, in schema order."""
    return [
        f"{section}.{key}"
        for section, spec in schema()["properties"].items()
        for key in spec["properties"]
    ]


def env_name(option: str) -> str:
    """`rollout.max_concurrent_restarts` -> `CALICO_ROLLOUT_MAX_CONCURRENT_RESTARTS`."""
    return ENV_PREFIX + option.replace(".", "_").upper()


def option_spec(option: str) -> dict:
    """The schema of one option (`type`, `default`, `description`, …)."""
    section, key = option.split(".", 1)
    return schema()["properties"][section]["properties"][key]


# What a command sets under the user's options: `{section: {key: value}}`, or a function of
# what the user gave (the file's sections with the environment's values applied) returning it.
Defaults = Mapping[str, Mapping[str, Any]] | Callable[[Mapping[str, Any]], Mapping]


def load_options(
    path: str | None,
    environ: Mapping[str, str],
    defaults: Defaults | None = None,
    owned: Mapping[str, tuple[Any, str]] | None = None,
) -> Options:
    """File, then environment overrides, then schema defaults, then validation.

    A command that runs the scheduler in a setting of its own (`calico-dcos local`) gives
    `defaults`, which come between the user's values and the schema's: what the user gives
    in the file or in `CALICO_*` variables always wins over them. `owned` (`{"section.key":
    (value, why)}`) are the few options such a command must set itself (the master of its
    embedded cluster): their values win, and a user's value for one is an error saying `why`,
    never silently replaced.
    """
    errors: list[tuple[str, str]] = []
    given = _read_file(path) if path else {}
    errors += _unknown_keys(given)
    errors += _apply_environment(given, environ)
    for option, (value, why) in (owned or {}).items():
        section, key = option.split(".", 1)
        values = given.setdefault(section, {})
        if isinstance(values, dict):
            if key in values and values[key] != value:
                errors.append((option, why))
            values[key] = value
    if defaults is not None:
        layer = defaults(copy.deepcopy(given)) if callable(defaults) else defaults
        given = _under(given, layer)
    doc = _with_defaults(given)
    errors += _schema_errors(doc)
    errors += _non_finite_errors(doc)
    skipped: list[str] = []
    errors += _semantic_errors(doc, {option for option, _ in errors}, skipped)
    errors = _naming_the_variables(errors, environ)
    if errors:
        raise OptionsError(errors, pending=len(skipped))
    return Options(doc)


def _under(given: dict, defaults: Mapping[str, Mapping[str, Any]]) -> dict:
    """`given` with `defaults` filling the options it leaves out (a section that is not an
    object stays as given: it is reported as such)."""
    merged = copy.deepcopy(given)
    for section, values in defaults.items():
        target = merged.setdefault(section, {})
        if isinstance(target, dict):
            for key, value in values.items():
                target.setdefault(key, copy.deepcopy(value))
    return merged


def _naming_the_variables(
    errors: list[tuple[str, str]], environ: Mapping[str, str]
) -> list[tuple[str, str]]:
    """An error about an option whose value came from the environment names the variable, so
    that an operator does not look for it in the options file."""
    named = []
    for path, message in errors:
        variable = env_name(path) if "." in path else ""
        if variable in environ and variable not in message:
            message += f" (from the environment variable {variable})"
        named.append((path, message))
    return named


def _read_file(path: str) -> dict:
    try:
        with open(path) as stream:  # YAML's errors name the file by the stream's name
            doc = json.load(stream) if path.endswith(".json") else yaml.safe_load(stream)
    except OSError as exc:
        raise OptionsError([("", f"cannot read options file {path}: {exc.strerror}")]) from exc
    except (ValueError, yaml.YAMLError) as exc:
        raise OptionsError([("", f"options file {path} is not valid JSON or YAML: {exc}")]) from exc
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise OptionsError([("", f"options file {path} must hold an object of sections")])
    return doc


def _unknown_keys(given: dict) -> list[tuple[str, str]]:
    sections = schema()["properties"]
    errors = []
    for section, values in given.items():
        if section not in sections:
            hint = _did_you_mean(section, sections)
            errors.append((section, "names no option section" + hint))
        elif not isinstance(values, dict):
            errors.append((section, "must be an object of options"))
        else:
            known = sections[section]["properties"]
            errors += [
                (f"{section}.{key}", "names no option" + _did_you_mean(key, known, f"{section}."))
                for key in values
                if key not in known
            ]
    return errors


def _did_you_mean(name: str, known, prefix: str = "") -> str:
    """`; did you mean <prefix><closest>?`, or nothing when no known name is close."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return f"; did you mean {prefix}{close[0]}?" if close else ""


# `CALICO_…` variables of the project's own that are no options: the operator commands'
# the installer's, the tests' and the devcluster's.
NOT_OPTION_PREFIXES = ("CALICO_DCOS_", "CALICO_INSTALLER_", "CALICO_TEST_", "CALICO_DEVCLUSTER_")
# calico/node's own variables that are also one of our options' keys without its section
# (Calico's "Configuring calico/node" reference, docs.tigera.io/calico/latest/reference/
# configure-calico-node). Exported in an operator's shell for calico/node, they would read as a
# misspelled option; the error says both readings, since this program never passes its
# environment on to calico/node (the options do, `steps.node_environment`).
CALICO_NODE_VARIABLES = frozenset(
    {"CALICO_IPV4POOL_CIDR", "CALICO_IPV4POOL_NAT_OUTGOING", "CALICO_NETWORKING_BACKEND"}
)


def _unknown_environment(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """`CALICO_…` variables that name no option but are close to one, each with the option's
    variable it is closest to (`did you mean …?`), as a misspelled file key gets.

    A misspelled variable would otherwise be ignored silently and its default used. Close
    means: a known section with any key (the closest key, if one is close); a section left
    out or misspelled whose rest is an option's key (`CALICO_IPV4POOL_CIDR`,
    `CALICO_MASTER`: `CALICO_CALICO_IPV4POOL_CIDR`, `CALICO_SERVICE_MASTER`); or a name very
    close to an option's variable. Other `CALICO_…` variables (Calico's own, such as
    `CALICO_NODENAME`, and the project's `CALICO_DCOS_…`) are not options and are left alone.
    """
    known = {env_name(option): option for option in option_names()}
    by_key: dict[str, list[str]] = {}
    for variable, option in known.items():
        by_key.setdefault(option.split(".", 1)[1].upper(), []).append(variable)
    prefixes = tuple(f"{ENV_PREFIX}{section.upper()}_" for section in schema()["properties"])
    errors = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in known:
            continue
        if name.startswith(NOT_OPTION_PREFIXES):
            continue
        prefix = next((p for p in prefixes if name.startswith(p)), None)
        rest = name[len(ENV_PREFIX) :]
        if prefix is not None:  # a known section: the closest of its keys
            keys = {v[len(prefix) :]: v for v in known if v.startswith(prefix)}
            close = difflib.get_close_matches(name[len(prefix) :], keys, n=1, cutoff=0.75)
            close = [keys[c] for c in close]
        elif rest in by_key:  # the section left out: every option with that key
            close = by_key[rest]
        else:  # a misspelled section too: only a name very close to an option's
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.93)
            if not close:
                continue  # not ours: Calico's own variables, the installer's
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        if name in CALICO_NODE_VARIABLES:
            hint += (
                " (calico/node reads a variable of this name, this program does not: if it was"
                " meant for calico/node, unset it here; the option sets it there)"
            )
        errors.append((name, f"names no option{hint}"))
    return errors


def _apply_environment(given: dict, environ: Mapping[str, str]) -> list[tuple[str, str]]:
    errors = _unknown_environment(environ)
    for option in option_names():
        name = env_name(option)
        if name not in environ:
            continue
        try:
            value = parse_env_value(option_spec(option), environ[name])
        except ValueError as exc:
            errors.append((option, f"environment variable {name}={environ[name]!r}: {exc}"))
            continue
        section, key = option.split(".", 1)
        target = given.setdefault(section, {})
        if isinstance(target, dict):
            target[key] = value
    return errors


def parse_env_value(spec: Mapping[str, Any], text: str) -> Any:
    """Environment text to the option's JSON type (CONTRACTS.md "Options")."""
    types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    if "boolean" in types:
        if text not in ("true", "false"):
            raise ValueError("expected true or false")
        return text == "true"
    if "integer" in types and _INTEGER.fullmatch(text):
        return int(text)
    if "string" in types:
        return text
    if "integer" in types:
        raise ValueError("expected an integer")
    if not _NUMBER.fullmatch(text):
        raise ValueError("expected a decimal number")
    return float(text) if any(c in text for c in ".eE") else int(text)


def format_env_value(value: Any) -> str:
    """The inverse of `parse_env_value`: how an option is written into an environment."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _with_defaults(given: dict) -> dict:
    doc = {}
    for section, spec in schema()["properties"].items():
        values = given.get(section)
        values = values if isinstance(values, dict) else {}
        doc[section] = {
            key: copy.deepcopy(values[key]) if key in values else copy.deepcopy(prop["default"])
            for key, prop in spec["properties"].items()
        }
    return doc


def _schema_errors(doc: dict) -> list[tuple[str, str]]:
    validator = jsonschema.Draft4Validator(schema())
    errors = []
    for error in validator.iter_errors(doc):
        path = ".".join(str(part) for part in error.absolute_path)
        if path in option_rules.SECRET_FILE_OPTIONS:  # its value may be the secret itself
            errors.append((path, _secret_message(error)))
        else:
            errors.append((path, _message(error, path)))
    return errors


def _secret_message(error: jsonschema.ValidationError) -> str:
    """A secret option's schema error, without its value."""
    if error.validator == "type":
        wanted = _type_message(error).partition(" is not ")[2] or "a string"
        return f"the value (not shown) is not {wanted}: give the path of a file holding the secret"
    return (
        "the value (not shown) holds a double quote, backslash or control character: this "
        "option takes the PATH of a file holding the secret, not the secret"
    )


_UNRENDERABLE = re.compile(r'["\\\x00-\x1f]')
# Options that hold a list as one comma-separated string (Universe's mustache renders only
# scalars into the Marathon app's environment, `scripts/universe.py`): a list written in
# JSON, in a file or an environment variable, is refused with the string to write instead.
LIST_LIKE_OPTIONS = (
    "service.roles",
    "etcd.endpoints",
    "etcd.cluster_endpoints",
    "node.extra_env",
    "agents.constraints",
)


_PERCENTAGE = re.compile(r"-?[0-9]+(\.[0-9]*)?%")
_JSON_TYPES = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
}


def _message(error: jsonschema.ValidationError, path: str = "") -> str:
    """jsonschema's message, except where it would not tell a person what to write instead:
    a failed pattern (what the option expects; a percentage's range; a list-like option's
    list written as JSON text, as `CALICO_SERVICE_ROLES='["*","slave_public"]'`), a wrong
    type (what type it wants; a null is what YAML makes of `key:` with nothing after it)."""
    if error.validator == "type":
        return _type_message(error)
    if error.validator != "pattern":
        return error.message
    items = _json_list(error.instance) if path in LIST_LIKE_OPTIONS else None
    if items is not None:
        return (
            f"{error.instance!r} is a JSON list; this option is one comma-separated string: "
            f"{','.join(items)!r}"
        )
    if _UNRENDERABLE.search(error.instance):
        return f"{error.instance!r} holds a double quote, backslash or control character"
    if _PERCENTAGE.fullmatch(error.instance):
        return (
            f"{error.instance!r}: a percentage must be a whole number from 1% to 100% "
            f"({error.schema['description']})"
        )
    return f"{error.instance!r} is not of the expected form: {error.schema['description']}"


def _json_list(text: str) -> list[str] | None:
    """The items of `text` when it is a JSON list of strings and numbers (`'["*","x"]'` ->
    `['*', 'x']`), else None."""
    if not text.lstrip().startswith("["):
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, list) or not all(
        isinstance(item, str | int | float) and not isinstance(item, bool) for item in doc
    ):
        return None
    return [str(item) for item in doc]


def _type_message(error: jsonschema.ValidationError) -> str:
    given = error.validator_value
    types = given if isinstance(given, list) else [given]
    wanted = " or ".join(_JSON_TYPES.get(t, t) for t in types)
    default = error.schema.get("default")
    if error.instance is None:
        hint = f"; leave it out for the default {default!r}" if "default" in error.schema else ""
        return f"has no value (null); expected {wanted}{hint}"
    if isinstance(error.instance, list) and types == ["string"]:
        # list-like options are comma-separated strings (Universe's mustache renders scalars)
        items = [item for item in error.instance if isinstance(item, str | int | float)]
        example = ",".join(str(item) for item in items)
        return (
            f"{error.instance!r} is a list; this option is one comma-separated string: {example!r}"
        )
    return f"{error.instance!r} is not {wanted}"


def _non_finite_errors(doc: dict) -> list[tuple[str, str]]:
    """YAML reads `.inf` and `.nan` as numbers, which JSON Schema's `number` accepts; no
    option means anything by them, and the state store writes only finite numbers
    (`store.encode_document`)."""
    return [
        (f"{section}.{key}", f"{value!r} is not a finite number: give a finite one")
        for section, values in doc.items()
        if isinstance(values, dict)
        for key, value in values.items()
        if isinstance(value, float) and not math.isfinite(value)
    ]


def _semantic_errors(doc: dict, failed: set[str], skipped: list[str]) -> list[tuple[str, str]]:
    """Checks a schema cannot express, on the options the schema found well-formed: every
    check runs whose options are all well-formed, whatever else is wrong, so that one
    `config validate` lists every error; a check that reads a refused option is named in
    `skipped` instead."""
    options = Options(doc)
    checks = (
        ("agents.constraints", agent_constraints),
        ("node.extra_env", node_extra_env),
    )
    errors = option_rules.rule_errors(options, failed, skipped)
    errors += matrix.profile_errors(options, failed, skipped)
    for option, check in checks:
        if option in failed:
            continue
        try:
            check(options)
        except OptionsError as exc:
            errors += exc.errors
    return errors


# Derived values: small pure functions of complete options.


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def etcd_endpoint_list(options: Mapping) -> list[str]:
    """The etcd endpoints Calico uses, as a list."""
    return _split(options["etcd"]["endpoints"])


def etcd_cluster_list(options: Mapping) -> list[str]:
    """The static etcd cluster endpoints the proxy forwards to (empty: SRV discovery)."""
    return _split(options["etcd"]["cluster_endpoints"])


def derived_cluster_store(options: Mapping) -> str:
    """Docker's cluster-store: the override, else `etcd://a:2379,b:2379` from the endpoints."""
    override = options["docker"]["cluster_store"]
    if override:
        return override
    hosts = [urlsplit(e).netloc if "://" in e else e for e in etcd_endpoint_list(options)]
    return "etcd://" + ",".join(hosts)


def roles(options: Mapping) -> list[str]:
    """The Mesos roles the framework subscribes with (MULTI_ROLE)."""
    return _split(options["service"]["roles"])


@dataclass(frozen=True)
class Constraint:
    """One Marathon-style agent constraint: `field` LIKE or UNLIKE a full-match regex."""

    field: str
    operator: str
    regex: re.Pattern

    def matches(self, hostname: str, attributes: Mapping[str, str]) -> bool:
        value = hostname if self.field == "hostname" else attributes.get(self.field)
        if value is None:
            return self.operator == "UNLIKE"
        return bool(self.regex.fullmatch(value)) == (self.operator == "LIKE")


def agent_constraints(options: Mapping) -> list[Constraint]:
    """`agents.constraints` parsed, regexes compiled; a bad regex names the option."""
    constraints = []
    for item in _split(options["agents"]["constraints"]):
        field, operator, pattern = item.split(":", 2)
        try:
            constraints.append(Constraint(field, operator, re.compile(pattern)))
        except re.error as exc:
            raise OptionsError([("agents.constraints", f"bad regex {pattern!r}: {exc}")]) from exc
    return constraints


def node_extra_env(options: Mapping) -> dict[str, str]:
    """`node.extra_env` (`KEY=VALUE,…`) as a dict, in the order given.

    Values are kept exactly, spaces included (`A=x y ,B= z` gives `"x y "` and `" z"`): they
    reach calico-node as environment variables, never through a shell. The schema's pattern
    allows no space before a key, nor a comma inside a value."""
    env = {}
    text = options["node"]["extra_env"]
    for item in text.split(",") if text else []:
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise OptionsError([("node.extra_env", f"expected KEY=VALUE, got {item!r}")])
        env[key] = value
    return env


_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:@/\s]+):[^@/\s]+@", re.I)


def redact_text(text: str) -> str:
    """`scheme://user:password@host` anywhere in `text` -> `scheme://user:***@host`."""
    return _URL_PASSWORD.sub(r"\g<scheme>\g<user>:***@", text)


def redacted(options: Mapping) -> dict:
    """Options safe to show: passwords inside URLs replaced; a secret option is shown only
    when its value looks like a path (`secret_path_shown`), else as `***`."""
    raw = options.raw if isinstance(options, Options) else copy.deepcopy(dict(options))
    for section, values in raw.items():
        for key, value in values.items():
            if not isinstance(value, str):
                continue
            secret = f"{section}.{key}" in option_rules.SECRET_FILE_OPTIONS
            if secret and value and not secret_path_shown(value):
                values[key] = "***"
            else:
                values[key] = redact_text(value)
    return raw


def read_secret(path: str, option: str = "") -> str:
    """Read a secret file (trailing newline stripped). Its content is never logged, nor its
    path unless it looks like one (`unreadable_secret`)."""
    try:
        return pathlib.Path(path).read_text().rstrip("\r\n")
    except OSError as exc:
        raise OptionsError([(option, unreadable_secret(path, exc))]) from None


def unreadable_secret(path: str, exc: OSError) -> str:
    """Why a secret option's file could not be read, in words that show its value only
    when it looks like a path: `the file /run/s does not exist`; `the file it names does not
    exist (a bare name of 7 characters: if that is the secret itself, put it in a file and
    give its path)` for `hunter2` (a bare name is a legitimate sandbox path, so validation
    lets it pass, but a short password looks just the same)."""
    what = "does not exist" if exc.errno == errno.ENOENT else f"cannot be read: {exc.strerror}"
    if secret_path_shown(path):
        return f"the file {path} {what}"
    return f"the file it names {what} {shown_path(path)}"


def secret_path_shown(path: str) -> bool:
    """Whether a secret option's value may be shown: it looks like a path (has a '/' or a
    '.') and not like a secret (`option_rules.looks_like_a_secret`)."""
    return ("/" in path or "." in path) and not option_rules.looks_like_a_secret(path)


def shown_path(path: str) -> str:
    """A secret file's path as messages show it: itself when it looks like a path
    (`secret_path_shown`), else words saying what it is without it."""
    if secret_path_shown(path):
        return path
    if option_rules.looks_like_a_secret(path):
        return "(a value that looks like a secret, not shown: the option takes a file's path)"
    return (
        f"(a bare name of {len(path)} characters: if that is the secret itself, put it in a "
        "file and give its path)"
    )
