"""Each option checked against the rule of the component that reads it.

The schema says what JSON an option is; these rules say what the program that finally reads
the value accepts, so that an options file that passes `config validate` never fails on an
agent. Each rule is a pure function of one value (or of complete options, where the rule
depends on another option) that returns `None` or a message saying what is wrong and what
is expected. `options._semantic_errors` runs them on the options the schema found
well-formed.

Sources, per rule, are in each function's docstring.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from urllib.parse import parse_qs, urlsplit

from calico_dcos import matrix

Rule = Callable[[Mapping, str], "str | None"]


def _items(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


_HOSTNAME_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _is_hostname(host: str) -> bool:
    """An RFC 1123 host name or an IPv4 address (IPv6 in brackets is checked by urlsplit)."""
    if not host or len(host) > 253:
        return False
    return all(_HOSTNAME_LABEL.fullmatch(label) for label in host.rstrip(".").split("."))


def _host_port_error(netloc: str, *, port_required: bool) -> str | None:
    """`host[:port]`, the port in 1–65535 (`urlsplit` parses it)."""
    try:
        parts = urlsplit("//" + netloc)
        port = parts.port
    except ValueError as exc:
        return f"{netloc!r}: {exc}"
    host = parts.hostname or ""
    if not (_is_hostname(host) or _is_ip(host)):
        return f"{netloc!r} has no valid host name"
    if port_required and port is None:
        return f"{netloc!r} has no port"
    if port == 0:
        return f"{netloc!r}: port 0 is not a port"
    return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return repr(url)
    return repr(url.replace(":" + parts.password + "@", ":***@", 1))


def _http_url_error(url: str, what: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return f"{_redact(url)}: {what} must start with http:// or https://"
    if parts.query or parts.fragment or parts.path not in ("", "/"):
        return f"{_redact(url)}: {what} is scheme://host:port with no path"
    return _host_port_error(parts.netloc.rpartition("@")[2], port_required=False)


def etcd_endpoints(options: Mapping, value: str) -> str | None:
    """etcd client URLs, `http(s)://host[:port]`, comma-separated, at least one.

    Read by calico-node and the libnetwork plugin as `ETCD_ENDPOINTS` (Calico's
    `libcalico-go/lib/apiconfig`: a list of URLs), and by the installer's `cni` command
    (`installer/cni.py`), which refuses any other scheme.
    """
    endpoints = _items(value)
    if not endpoints:
        return "give at least one etcd client URL, e.g. http://192.0.2.10:2379"
    for endpoint in endpoints:
        error = _http_url_error(endpoint, "an etcd endpoint")
        if error:
            return error + " (e.g. http://192.0.2.10:2379)"
    return None


def etcd_cluster_endpoints(options: Mapping, value: str) -> str | None:
    """The members the agent's etcd proxy forwards to (empty: DNS SRV discovery).

    v2 proxy: `--initial-cluster=name=URL,…` needs URLs with a scheme (etcd 2.x/3.x
    `etcdmain/config.go`, `types.NewURLsMap`). grpc-proxy: `--endpoints` takes `host:port`
    or a URL (etcd `etcdmain/grpc_proxy.go`, clientv3 endpoints).
    """
    for endpoint in _items(value):
        if "@" in endpoint:
            return (
                f"{_redact(endpoint)}: the etcd proxy takes no credentials in URLs (they would "
                "show in every agent's process list); use TLS client certificates instead"
            )
        if "://" in endpoint:
            error = _http_url_error(endpoint, "an etcd cluster endpoint")
        elif matrix.proxy_mode(options) == "v2":
            error = f"{endpoint!r}: the v2 proxy needs URLs, e.g. http://{endpoint}"
        else:
            error = _host_port_error(endpoint, port_required=True)
        if error:
            return error
    return None


def discovery_srv(options: Mapping, value: str) -> str | None:
    """The DNS domain etcd looks up SRV records in (`--discovery-srv`, RFC 1123 names).

    Needed only when the proxy runs and no cluster endpoints are given.
    """
    etcd = options["etcd"]
    if not etcd["run_proxy"] or _items(etcd["cluster_endpoints"]):
        return None
    if not _is_hostname(value):
        return (
            f"{value!r} is not a DNS domain; give one (e.g. etcd.mesos) or etcd.cluster_endpoints"
        )
    return None


# Mesos' fetcher: src/launcher/fetcher.cpp (`fetchWithHadoopClient` for hdfs/s3 schemes,
# `fetchWithNet` for http, https, ftp, ftps; a path or file:// is copied locally).
_FETCHER_SCHEMES = ("http", "https", "ftp", "ftps", "hdfs", "hftp", "s3", "s3n", "file")


def listen_address(options: Mapping, value: str) -> str | None:
    """The proxy's listen address: `agent-ip` or an IPv4 address (the schema's pattern lets
    300.1.1.1 through). It becomes grpc-proxy's `--listen-addr=HOST:PORT` or the v2 proxy's
    `--listen-client-urls=http://HOST:PORT` (`steps._etcd_arguments`), which the proxy must
    bind on the agent."""
    if value == "agent-ip":
        return None
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return f"{value!r} is not an IPv4 address (e.g. 127.0.0.1, or agent-ip)"
    return None


def fetcher_uri(options: Mapping, value: str) -> str | None:
    """A URI the Mesos fetcher can download: a known scheme or an absolute path, with a file name.

    Source: apache/mesos `src/launcher/fetcher.cpp` and `docs/fetcher.md`. The file name
    (the last path segment) is how the task finds the download in its sandbox.
    """
    parts = urlsplit(value)
    if not parts.scheme and not value.startswith("/"):
        return f"{value!r}: give a URL (https://…) or an absolute path for Mesos' fetcher"
    if parts.scheme and parts.scheme not in _FETCHER_SCHEMES:
        return f"{value!r}: Mesos' fetcher does not fetch {parts.scheme}:// URIs"
    if parts.scheme in ("http", "https", "ftp", "ftps") and not parts.hostname:
        return f"{value!r} has no host"
    if not parts.path.rstrip("/").rsplit("/", 1)[-1]:
        return f"{value!r} names no file"
    return None


def docker_cluster_store(options: Mapping, value: str) -> str | None:
    """Docker's `cluster-store`: `etcd|consul|zk://host:port[,host:port][/path]`, or empty.

    Source: docker/libkv `store.go` (the backends) and dockerd's `--cluster-store` flag.
    Empty derives `etcd://…` from `etcd.endpoints`.
    """
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("etcd", "consul", "zk"):
        return f"{value!r}: expected etcd://host:port (or consul://, zk://)"
    for netloc in parts.netloc.split(","):
        error = _host_port_error(netloc, port_required=False)
        if error:
            return error
    return None


def absolute_path(options: Mapping, value: str) -> str | None:
    """A directory on the agent: an absolute path (the installer runs from the sandbox)."""
    if not value.startswith("/"):
        return f"{value!r} must be an absolute path"
    return None


def agent_python(options: Mapping, value: str) -> str | None:
    """An interpreter on the agent: an absolute path or a command name on the agent's PATH."""
    if value.startswith("/") or re.fullmatch(r"[A-Za-z0-9._+-]+", value):
        return None
    return f"{value!r}: give an absolute path (e.g. /opt/mesosphere/bin/python3) or a command"


def posix_user(options: Mapping, value: str) -> str | None:
    """The user tasks run as: a POSIX user name (shadow-utils' rule, as on DC/OS agents)."""
    if re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", value):
        return None
    return f"{value!r} is not a user name (lower case letters, digits, _ and -)"


MASTER_FORMS = (
    "host:port (e.g. leader.mesos:5050) or zk://host:port[,host:port…]/path "
    "(e.g. zk://master.mesos:2181/mesos)"
)
STRICT_MASTER_FORMS = (
    "https://host:port (e.g. https://leader.mesos:5050) or zk://host:port[,host:port…]/path "
    "(e.g. zk://master.mesos:2181/mesos)"
)
# `zk//h:2181/mesos`, `zk:/h…`, `ZK://h…`: "zk" then a slash, or a colon and a slash (a host
# named zk with a port, `zk:2181`, is a host:port).
_ZK_MISTYPED = re.compile(r"(?i)zk:?/+")


def mesos_master(options: Mapping, value: str) -> str | None:
    """pymesos' master: `zk://[user:password@]host:port[,…]/path` or `host[:port]`; with
    `service.strict`, `https://host:port` or `zk://…` (`strict.master_address`).

    pymesos `scheduler.py` (`MesosSchedulerDriver.start`): a value starting with `zk://`
    goes, without its scheme, to kazoo (`kazoo/hosts.py` `collect_hosts`: `host[:port]`
    items, comma-separated, then the chroot path); any other value gets `:5050` when it has
    no colon, and `_get_version`/`_get_conn` then do `host, port = master.split(':', 2)` and
    `int(port)`: exactly one colon and a decimal port, or the scheduler dies with a
    ValueError at start-up. So no scheme, no path, no list of masters and no IPv6 literal.
    Strict mode sends a DC/OS authentication token with every request, so a plain-HTTP
    master is refused there.
    """
    if value.startswith("zk://"):
        if urlsplit(value).query or urlsplit(value).fragment:
            return (
                f"{_redact(value)}: pymesos hands all after zk:// to kazoo, which would take a "
                "query for part of the path; give zk://host:port[,host:port…]/path "
                "(e.g. zk://master.mesos:2181/mesos)"
            )
        return zookeeper_url(options, value, example="zk://master.mesos:2181/mesos")
    mistyped = _ZK_MISTYPED.match(value)
    if mistyped:
        rest = value[mistyped.end() :]
        return (
            f"{value!r} is a misspelled ZooKeeper URL: write zk://{rest} (the scheme is "
            "zk:// with a colon and two slashes)"
        )
    strict = options["service"]["strict"]
    if strict is True and not value.startswith("https://"):
        return (
            f"{value!r}: service.strict needs https://host:port (or zk://…), so that the DC/OS "
            "authentication token never crosses the network in clear"
        )
    if strict is True:
        address = value.removeprefix("https://")
        address = address[:-1] if address.endswith("/") else address
        return _pymesos_address_error(value, address, STRICT_MASTER_FORMS)
    if "://" in value:
        scheme = value.partition("://")[0]
        return f"{value!r}: the scheduler takes no {scheme}:// master; give {MASTER_FORMS}"
    return _pymesos_address_error(value, value, MASTER_FORMS)


def _pymesos_address_error(value: str, address: str, forms: str) -> str | None:
    """`host[:port]` exactly as pymesos splits it: one colon, a decimal port 1–65535."""
    what = None
    if not address:
        what = "it has no host"
    elif any(c in address for c in "/?#@"):
        what = "it has a path, a query or credentials, which pymesos would take for the port"
    elif "," in address:
        what = "pymesos takes one master (for several, give the ZooKeeper they elect a leader in)"
    elif address.startswith("[") or address.count(":") > 1:
        what = "pymesos splits it at ':' and cannot take an IPv6 address; use a host name"
    else:
        host, colon, port = address.partition(":")
        if not (_is_hostname(host) or _is_ip(host)):
            what = f"{host!r} is not a host name"
        elif colon and not (port.isdigit() and port.isascii() and 0 < int(port) < 65536):
            what = f"the port {port!r} is not a number from 1 to 65535"
        elif forms == STRICT_MASTER_FORMS and not colon:
            what = "it has no port"
    if what is None:
        return None
    return f"{value!r} is not of the form pymesos reads: {what}; give {forms}"


def zookeeper_url(
    options: Mapping, value: str, example: str = "zk://master.mesos:2181/calico"
) -> str | None:
    """`zk://[user:password@]host:port[,host:port]/path`, a path other than `/` (kazoo's
    hosts and chroot: `kazoo/hosts.py` `collect_hosts`, whose `int(res.port)` and
    `urlsplit` port parsing refuse a port that is no number in 0–65535)."""
    parts = urlsplit(value)
    if parts.scheme != "zk":
        return None
    if not parts.netloc:
        return f"{value!r} has no host; e.g. {example}"
    for netloc in parts.netloc.rpartition("@")[2].split(","):
        error = _host_port_error(netloc, port_required=False)
        if error:
            return f"{_redact(value)}: {error}; e.g. {example}"
    if parts.path.rstrip("/") == "":
        return f"{_redact(value)} needs a path, e.g. {example}"
    return None


# The store's own URL options, in seconds (calico_dcos/store/zk.py `URL_OPTIONS`).
_STATE_URL_OPTIONS = ("session_timeout", "connect_timeout")


def state_url(options: Mapping, value: str) -> str | None:
    """`service.state`: a directory, or `zk://host:port[,…]/path[?session_timeout=S&
    connect_timeout=S]` as the store's `parse_url` reads it (each option a number of
    seconds; no other), so that `config validate` says what start-up would."""
    error = zookeeper_url(options, value)
    if error or not value.startswith("zk://"):
        return error
    for name, values in parse_qs(urlsplit(value).query, keep_blank_values=True).items():
        if name not in _STATE_URL_OPTIONS:
            return (
                f"{_redact(value)}: unknown option {name!r}; the store takes "
                f"{' and '.join(_STATE_URL_OPTIONS)} (seconds)"
            )
        try:
            seconds = float(values[-1])
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds) or seconds <= 0:
            return f"{_redact(value)}: {name} is not a number of seconds above 0 (e.g. 10)"
    return None


def artifacts_url(options: Mapping, value: str) -> str | None:
    """Where agents fetch the installer and report to: empty (the scheduler's own) or http(s)."""
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{value!r}: give http(s)://host:port of the scheduler, or leave it empty"
    return _host_port_error(parts.netloc.rpartition("@")[2], port_required=False)


# Options whose value is the path of a file holding a secret (the secret itself never goes in
# an option: options are shown by `config show`, `/v1/options` and the status page).
SECRET_FILE_OPTIONS = (
    "service.zk_credentials_file",
    "service.secret_file",
    "service.service_account_credential_file",
    "service.api_token_file",
)
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9+/=_-]{16,}")
# A JSON Web Token (RFC 7519 section 7.1: base64url header "." payload "." signature; both
# JSON objects, so each starts with `eyJ`, the base64 of '{"'), as a DC/OS token is.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")


def looks_like_a_secret(value: str) -> bool:
    """Whether a secret option's value looks like the secret rather than a file's path.

    A value written as a path (starting with `/`, `./` or `../`) never does. Otherwise:
    whitespace or a ':' inside (`principal:secret`, ZooKeeper's `user:password`), or 16 or
    more token characters (hex, base64, base64url, words joined by '-') with no '/' and no
    '.' (`openssl rand -hex 32`, a Mesos secret), or a JSON Web Token (a DC/OS token, dots
    and all). A file in the sandbox (where DC/OS puts file-based secrets) named like that is
    written `./NAME`."""
    if value.startswith(("/", "./", "../")):
        return False
    if any(char.isspace() for char in value) or ":" in value:
        return True
    if _JWT.fullmatch(value):
        return True
    return "/" not in value and "." not in value and bool(_TOKEN_LIKE.fullmatch(value))


def secret_file_path(options: Mapping, value: str) -> str | None:
    """The path of a file holding a secret: a value that looks like the secret itself is
    refused, and the message never repeats it (it would reach logs and terminals)."""
    if value and looks_like_a_secret(value):
        return (
            "this option takes the PATH of a file holding the secret, and its value looks like "
            "the secret itself (not shown here): write the secret into a file (mode 0600, or a "
            "DC/OS file-based secret) and give that file's path; a file in the sandbox with "
            "such a name is written ./NAME"
        )
    return None


# Docker's image reference grammar: docker/distribution `reference/regexp.go`.
_NAME_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*"
_DOMAIN_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = rf"{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*(?::[0-9]+)?"
_IMAGE = re.compile(
    rf"(?:{_DOMAIN}/)?{_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)


def docker_image(options: Mapping, value: str) -> str | None:
    """A Docker image reference, `[registry/]name[:tag][@digest]` (docker/distribution)."""
    if _IMAGE.fullmatch(value):
        return None
    return f"{value!r} is not a Docker image reference (e.g. calico/node:v3.26.4)"


def ip_autodetection_method(options: Mapping, value: str) -> str | None:
    """calico/node's `IP_AUTODETECTION_METHOD` (Calico docs, "IP autodetection methods").

    `can-reach=<host or IP>`, `interface=<regex>[,…]`, `skip-interface=<regex>[,…]`,
    `cidr=<CIDR>[,…]` (calico `node/pkg/lifecycle/startup/autodetection`).
    """
    method, _, argument = value.partition("=")
    if method in ("interface", "skip-interface"):
        for pattern in argument.split(","):
            try:
                re.compile(pattern)
            except re.error as exc:
                return f"{value!r}: bad regex {pattern!r}: {exc}"
    elif method == "cidr":
        for cidr in argument.split(","):
            try:
                ipaddress.ip_network(cidr.strip(), strict=False)
            except ValueError as exc:
                return f"{value!r}: {exc}"
    elif method == "can-reach" and not (_is_ip(argument) or _is_hostname(argument)):
        return f"{value!r}: can-reach needs an IP address or a host name"
    return None


def empty_or(rule: Rule) -> Rule:
    """The rule, except that empty means "calico.profile's" (calico_dcos/matrix.py)."""

    def check(options: Mapping, value: str) -> str | None:
        return None if value == "" else rule(options, value)

    check.__doc__ = rule.__doc__
    return check


RULES: dict[str, Rule] = {
    **{option: secret_file_path for option in SECRET_FILE_OPTIONS},
    "service.master": mesos_master,
    "service.state": state_url,
    "service.user": posix_user,
    "service.agent_python": agent_python,
    "service.artifacts_url": artifacts_url,
    "etcd.endpoints": etcd_endpoints,
    "etcd.cluster_endpoints": etcd_cluster_endpoints,
    "etcd.discovery_srv": discovery_srv,
    "etcd.listen_address": listen_address,
    "etcd.binary_uri": fetcher_uri,
    "docker.cluster_store": docker_cluster_store,
    "cni.plugins_dir": absolute_path,
    "cni.config_dir": absolute_path,
    "cni.calico_uri": empty_or(fetcher_uri),
    "cni.calico_ipam_uri": empty_or(fetcher_uri),
    "libnetwork.image": empty_or(docker_image),
    "libnetwork.binary_uri": empty_or(fetcher_uri),
    "node.image": empty_or(docker_image),
    "node.ip_autodetection_method": ip_autodetection_method,
}
"""Option path → the rule of the component that reads it."""


# Rule → the other options it reads: when the schema refused one of them, the rule waits.
READS: dict[str, tuple[str, ...]] = {
    "service.master": ("service.strict",),
    "etcd.cluster_endpoints": ("calico.profile", "etcd.proxy_mode"),
    "etcd.discovery_srv": ("etcd.run_proxy", "etcd.cluster_endpoints"),
}


def rule_errors(
    options: Mapping, failed: set[str], skipped: list[str] | None = None
) -> list[tuple[str, str]]:
    """`(path, message)` for every option that breaks its reader's rule.

    Options the schema already refused (`failed`) and options this schema does not have are
    skipped, so that each problem is reported once. A rule that also reads another option
    the schema refused (`READS`) cannot run yet: its path goes to `skipped`.
    """
    errors = []
    for path, rule in RULES.items():
        section, key = path.split(".", 1)
        if path in failed or key not in options.get(section, {}):
            continue
        if not failed.isdisjoint(READS.get(path, ())):
            if skipped is not None:
                skipped.append(path)
            continue
        message = rule(options, options[section][key])
        if message:
            errors.append((path, message))
    return errors
