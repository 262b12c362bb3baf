"""The DC/OS Universe package under `universe/`: its `config.json`, and rendering as Cosmos does.

`config.json` is derived from the options schema (`config/options.schema.json`), with one
difference: options whose default is one of the package's assets in `resource.json` (etcd
tarball, CNI binaries, Docker images), and `service.state`, default to `""` there, and the
template fills them in — from `resource.json`, which DC/OS's Local Universe tooling rewrites
to local mirrors for air-gapped clusters (mesosphere/universe `scripts/local-universe.py`,
`prepare_repository`), and, for the state, from `service.name`, as DC/OS SDK services keep
theirs under `/dcos-service-<name>` (mesosphere/dcos-commons
`sdk/scheduler/src/main/java/com/mesosphere/sdk/curator/CuratorUtils.java`). Under the
package the state must be in ZooKeeper: a directory inside the container is lost at every
restart.

`cosmos_render` renders `marathon.json.mustache` the way DC/OS's package manager does
(dcos/cosmos `cosmos-common/.../render/PackageDefinitionRenderer.scala`):
`config.json`'s defaults (`JsonSchema.extractDefaultsFromSchema`: each property's
`default`, else its nested properties' defaults) deep-merged with the user's options
(`JsonUtil.merge`), validated against `config.json`, then `{"resource": resource.json}`
merged in; strings JSON-encoded without their quotes, integral numbers as integers, other
numbers as Java's `Double.toString`, booleans as `true`/`false`; mustache.java with HTML
escaping turned off; the result must be a JSON object, and its labels get
`DCOS_PACKAGE_NAME`, `DCOS_PACKAGE_VERSION`, `DCOS_PACKAGE_SOURCE`, `DCOS_PACKAGE_OPTIONS`
and `DCOS_PACKAGE_DEFINITION` (`nonOverridableLabels`; names from `MarathonApp.scala`).
pystache stands in for mustache.java: the same spec, and an `escape` hook to turn escaping
off as Cosmos' `encode` override does. A section on a string renders when it is not empty,
and names inside it still resolve from the root, which the template's "this option, else the
package's own" relies on, as dcos-commons' templates do (`frameworks/helloworld/universe/
marathon.json.mustache`: `{{#service.service_account_secret}}` then
`"{{service.service_account_secret}}"` inside it).

Run `python -m scripts.universe` to regenerate `universe/config.json` and `marathon.json`.
"""

from __future__ import annotations

import base64
import copy
import decimal
import json
import pathlib
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
import pystache

ROOT = pathlib.Path(__file__).resolve().parents[1]
UNIVERSE = ROOT / "universe"
OPTIONS_SCHEMA = ROOT / "config" / "options.schema.json"
STATE_OPTION = ("service", "state")
STATE_DEFAULT = "zk://master.mesos:2181/dcos-service-<service.name>"
# ZooKeeper only under the package; the characters the options schema refuses stay refused.
STATE_PATTERN = '^(zk://[^"\\\\\\x00-\\x1f]+)?$'


def read_json(path: pathlib.Path) -> Any:
    return json.loads(path.read_text())


def resource(universe: pathlib.Path = UNIVERSE) -> dict:
    return read_json(universe / "resource.json")


def assets(res: Mapping) -> Iterator[tuple[str, str]]:
    """`(mustache name, value)` of every URI and image in `resource.json`'s assets."""
    for name, uri in res.get("assets", {}).get("uris", {}).items():
        yield f"resource.assets.uris.{name}", uri
    for name, image in res.get("assets", {}).get("container", {}).get("docker", {}).items():
        yield f"resource.assets.container.docker.{name}", image


def asset_options(options_schema: Mapping, res: Mapping) -> dict[tuple[str, str], str]:
    """`(section, key)` -> the asset's mustache name, for each option whose default is an asset."""
    by_value = {value: name for name, value in assets(res)}
    found = {}
    for section, spec in options_schema["properties"].items():
        for key, option in spec["properties"].items():
            if option.get("type") == "string" and option.get("default") in by_value:
                found[(section, key)] = by_value[option["default"]]
    return found


def package_config(options_schema: Mapping, res: Mapping) -> dict:
    """`config.json`: the options schema, with package-filled options defaulting to `""`."""
    config = copy.deepcopy(dict(options_schema))
    for (section, key), name in asset_options(options_schema, res).items():
        option = config["properties"][section]["properties"][key]
        option["default"] = ""
        option.pop("minLength", None)
        option["description"] += (
            f" Empty: the package's own ({name.removeprefix('resource.')} in resource.json,"
            " which a Local Universe mirrors for air-gapped clusters)."
        )
    section, key = STATE_OPTION
    state = config["properties"][section]["properties"][key]
    state.update(
        default="",
        pattern=STATE_PATTERN,
        description=(
            "Where the scheduler keeps its state: zk://host:port[,...]/path. Empty: "
            f"{STATE_DEFAULT}, as DC/OS SDK services keep theirs. A directory inside the "
            "container is lost at every restart, so the package takes ZooKeeper only."
        ),
    )
    state.pop("minLength", None)
    return config


# -- Cosmos ---------------------------------------------------------------------------------


def extract_defaults(schema: Mapping) -> dict:
    """`JsonSchema.extractDefaultsFromSchema`: each property's default, else its properties'."""
    out = {}
    for name, prop in schema.get("properties", {}).items():
        if not isinstance(prop, Mapping):
            continue
        if "default" in prop:
            out[name] = copy.deepcopy(prop["default"])
        elif "properties" in prop:
            nested = extract_defaults(prop)
            if nested:
                out[name] = nested
    return out


def merge(target: Mapping, fragment: Mapping) -> dict:
    """`JsonUtil.merge` (circe's deepMerge): objects merge recursively, the rest is replaced."""
    out = dict(target)
    for key, value in fragment.items():
        if isinstance(out.get(key), Mapping) and isinstance(value, Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class JavaBoolean:
    """A boolean as mustache.java sees one: a section when true, `true`/`false` as text."""

    def __init__(self, value: bool) -> None:
        self.value = value

    def __bool__(self) -> bool:
        return self.value

    def __str__(self) -> str:
        return "true" if self.value else "false"


def java_double(value: float) -> str:
    """Java's `Double.toString`: shortest digits; plain between 1e-3 and 1e7, else `d.dddEn`."""
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        return repr(float(value))
    sign, digits, exponent = decimal.Decimal(repr(float(value))).normalize().as_tuple()
    text = "".join(map(str, digits))
    return f"{'-' if sign else ''}{text[0]}.{text[1:] or '0'}E{len(text) - 1 + exponent}"


def to_mustache(value: Any, in_array: bool = False) -> Any:
    """Cosmos' `jsonToJava`: strings JSON-encoded (quotes kept only inside arrays)."""
    if isinstance(value, bool):
        return JavaBoolean(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else java_double(value)
    if isinstance(value, str):
        encoded = json.dumps(value, ensure_ascii=False)
        return encoded if in_array else encoded[1:-1]
    if isinstance(value, list):
        return [to_mustache(item, in_array=True) for item in value]
    if isinstance(value, Mapping):
        return {key: to_mustache(item) for key, item in value.items()}
    return value


def encode_for_label(doc: Any) -> str:
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return base64.b64encode(text.encode()).decode()


def cosmos_render(
    user_options: Mapping | None = None,
    universe: pathlib.Path = UNIVERSE,
    res: Mapping | None = None,
    source: str = "https://universe.example/repo",
) -> dict:
    """The Marathon app DC/OS's package manager would create for `dcos package install`.

    `res` replaces `resource.json` (as a Local Universe rewrites it); invalid options raise
    `jsonschema.ValidationError`, as Cosmos refuses them (`JsonSchemaMismatch`).
    """
    package = read_json(universe / "package.json")
    config = read_json(universe / "config.json")
    res = resource(universe) if res is None else res
    options = merge(extract_defaults(config), user_options or {})
    jsonschema.Draft4Validator(config).validate(options)
    context = to_mustache(merge(options, {"resource": res}))
    renderer = pystache.Renderer(escape=lambda text: text, missing_tags="ignore")
    text = renderer.render((universe / "marathon.json.mustache").read_text(), context)
    app = json.loads(text)
    if not isinstance(app, dict):
        raise ValueError(
            "the template must render a JSON object (MarathonTemplateMustBeJsonObject)"
        )
    app.setdefault("labels", {}).update(
        {
            "DCOS_PACKAGE_NAME": package["name"],
            "DCOS_PACKAGE_VERSION": package["version"],
            "DCOS_PACKAGE_SOURCE": source,
            "DCOS_PACKAGE_OPTIONS": encode_for_label(dict(user_options or {})),
            "DCOS_PACKAGE_DEFINITION": encode_for_label(package),
        }
    )
    return app


def plain_marathon_app() -> dict:
    """`marathon.json`: the app with every default, without Cosmos' package labels."""
    app = cosmos_render()
    for label in list(app["labels"]):
        if label.startswith("DCOS_PACKAGE_") and label != "DCOS_PACKAGE_FRAMEWORK_NAME":
            del app["labels"][label]
    return app


def write_json(path: pathlib.Path, doc: Any) -> None:
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def post_install_notes(version: str, res: Mapping) -> str:
    """What `dcos package install` prints afterwards: what was installed, by name and version
    (not the 2016 `calico` package), and where to follow it. The Calico parts are those of
    `calico.profile` (calico_dcos/matrix.py); `res` names the etcd the proxies run."""
    from calico_dcos import matrix

    default, v3 = matrix.CALICO_26, matrix.CALICO_V3
    etcd = res["assets"]["uris"]["etcd"].rsplit("/", 1)[1].removesuffix("-linux-amd64.tar.gz")
    return (
        f"Installed calico-dcos {version} (not the 2016 'calico' package, 0.1.0-0.4.0): its "
        "scheduler, one Marathon app named by service.name, now installs Calico on every agent, "
        f"one agent at a time, as calico.profile says: by default {default.node_image}, "
        f"{default.libnetwork_image}, the calico and calico-ipam CNI plugins and an {etcd} "
        f"proxy; with calico-v3, {v3.node_image} as DC/OS 2.x runs it (docs/support-matrix.md). "
        "Follow the rollout on the service's page in the DC/OS UI "
        "(/service/<service.name>/), or its API there: v1/plan for each agent's steps, "
        "v1/health, metrics."
    )


def regenerate(universe: pathlib.Path = UNIVERSE) -> None:
    """`make universe`: config.json, the post-install notes, and (for the repository's own
    package) marathon.json, from the options schema, package.json and resource.json."""
    res = resource(universe)
    write_json(universe / "config.json", package_config(read_json(OPTIONS_SCHEMA), res))
    package = read_json(universe / "package.json")
    package["postInstallNotes"] = post_install_notes(package["version"], res)
    write_json(universe / "package.json", package)
    if universe.resolve() == UNIVERSE.resolve():
        write_json(ROOT / "marathon.json", plain_marathon_app())


if __name__ == "__main__":
    regenerate()
