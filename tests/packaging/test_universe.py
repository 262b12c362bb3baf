"""The Universe package and the plain Marathon app: valid, and faithful to the options.

Universe renders `marathon.json.mustache` with the options and `resource`; here chevron
stands in for Cosmos' renderer. Options use triple mustaches (no HTML escaping, so `&`, `<`,
`=` and `'` arrive unchanged) and booleans are rendered as sections (`true`/`false`, never
Python's `True`); the schema refuses double quotes, backslashes and control characters, the
only characters that would need JSON escaping.

Regenerate `marathon.json` after changing the template: `python tests/packaging/test_universe.py`.
"""

import json
import pathlib
import re

import chevron
import jsonschema
import pytest

from calico_dcos.options import env_name, format_env_value, load_options, option_names, schema

ROOT = pathlib.Path(__file__).resolve().parents[2]
UNIVERSE = ROOT / "universe"
# The Universe's own schemas, in the workplace's shared/ folder beside the repository.
SCHEMAS = ROOT.parent / "shared" / "schemas" / "universe"

# The fields of a Marathon app this package uses, with Marathon's own rules for them
# (app id path segments, ports, health check protocols, upgrade strategy ranges).
MARATHON_APP = {
    "type": "object",
    "required": ["id", "instances", "cpus", "mem", "container", "healthChecks"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": "^/([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])$"},
        "instances": {"type": "integer", "enum": [1]},
        "cpus": {"type": "number", "minimum": 0.01},
        "mem": {"type": "number", "minimum": 32},
        "disk": {"type": "number", "minimum": 0},
        "requirePorts": {"type": "boolean"},
        "container": {
            "type": "object",
            "required": ["type", "docker"],
            "additionalProperties": False,
            "properties": {
                "type": {"enum": ["DOCKER", "MESOS"]},
                "docker": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "minLength": 1},
                        "forcePullImage": {"type": "boolean"},
                    },
                    "additionalProperties": False,
                },
            },
        },
        "portDefinitions": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["port"],
                "additionalProperties": False,
                "properties": {
                    "port": {"type": "integer", "minimum": 0, "maximum": 65535},
                    "protocol": {"enum": ["tcp", "udp", "udp,tcp"]},
                    "name": {"type": "string", "pattern": "^[a-z0-9-]+$"},
                },
            },
        },
        "env": {"type": "object", "additionalProperties": {"type": "string"}},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "healthChecks": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["protocol", "path", "portIndex"],
                "properties": {
                    "protocol": {"enum": ["HTTP", "HTTPS", "MESOS_HTTP", "MESOS_HTTPS"]},
                    "path": {"type": "string", "pattern": "^/"},
                    "portIndex": {"type": "integer", "minimum": 0},
                    "gracePeriodSeconds": {"type": "integer", "minimum": 0},
                    "intervalSeconds": {"type": "integer", "minimum": 0},
                    "timeoutSeconds": {"type": "integer", "minimum": 0},
                    "maxConsecutiveFailures": {"type": "integer", "minimum": 0},
                },
            },
        },
        "upgradeStrategy": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "minimumHealthCapacity": {"type": "number", "minimum": 0, "maximum": 1},
                "maximumOverCapacity": {"type": "number", "minimum": 0, "maximum": 1},
            },
        },
    },
}

# Every value a shell, JSON or HTML escaper could trip on that the schema still allows.
AWKWARD = "it's $(not) <a> & b=c `x` ; é"
CUSTOM = {
    "service": {
        "name": "calico-net",
        "master": "zk://zk-1:2181,zk-2:2181/mesos",
        "state": "/var/lib/calico dcos/state",
        "principal": AWKWARD,
        "secret_file": "/run/secrets/it's mine",
        "failover_timeout_seconds": 1209600.5,
        "api_port": 10055,
        "artifacts_url": "http://10.0.0.5:10055/?a=1&b=2",
        "agent_python": "/opt/py 3/bin/python3",
        "log_level": "debug",
    },
    "etcd": {
        "run_proxy": False,
        "proxy_mode": "v2",
        "cluster_endpoints": "http://e1:2380,http://e2:2380",
        "listen_address": "agent-ip",
        "listen_port": 12379,
        "cpus": 0.25,
    },
    "docker": {"enable": False, "cluster_store": "etcd://e1:2379", "mem": 96},
    "cni": {
        "plugins_dir": "/opt/cni bin/",
        "config_name": "10-calico.conf",
        "log_level": "warning",
    },
    "libnetwork": {"enable": False, "image": "registry.local:5000/calico/libnetwork:v1"},
    "node": {
        "image": "registry.local:5000/calico/node:v3.27.0",
        "ip_autodetection_method": "interface=eth.*|ens[0-9]+",
        "networking_backend": "vxlan",
        "ignore_loose_rpf": False,
        "extra_env": "FELIX_LOGSEVERITYSCREEN=info,FELIX_PROMETHEUSMETRICSENABLED=true",
    },
    "rollout": {
        "max_concurrent_restarts": "25%",
        "stability_seconds": 0,
        "max_backoff_seconds": 60,
    },
    "agents": {
        "include_public": False,
        "constraints": "hostname:LIKE:agent-[0-9]+,rack:UNLIKE:r[.]9",
        "override_existing_calico": True,
    },
}


def read_json(path):
    return json.loads(pathlib.Path(path).read_text())


def resource():
    return read_json(UNIVERSE / "resource.json")


def render_app(options_raw):
    """What Cosmos does at install time: options plus `resource` into the template."""
    template = (UNIVERSE / "marathon.json.mustache").read_text()
    return json.loads(chevron.render(template, {**options_raw, "resource": resource()}))


def defaults():
    return load_options(None, {}).raw


def custom_options(tmp_path):
    path = tmp_path / "custom.json"
    path.write_text(json.dumps(CUSTOM))
    return load_options(str(path), {}).raw


def test_package_json_is_a_valid_packaging_4_framework():
    package = read_json(UNIVERSE / "package.json")
    validator = jsonschema.Draft4Validator(
        read_json(SCHEMAS / "package-schema.json"),
        format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER,
    )
    validator.validate(package)
    assert package["packagingVersion"] == "4.0" and package["framework"] is True
    notes = package["preInstallNotes"]
    assert "RESTARTS DOCKER" in notes and "RESTARTS THE MESOS AGENT" in notes


def test_resource_json_is_valid_and_matches_the_option_defaults():
    res = resource()
    jsonschema.Draft4Validator(read_json(SCHEMAS / "v3-resource-schema.json")).validate(res)
    options = defaults()
    assert res["assets"]["uris"] == {
        "etcd": options["etcd"]["binary_uri"],
        "calico": options["cni"]["calico_uri"],
        "calico_ipam": options["cni"]["calico_ipam_uri"],
    }
    images = res["assets"]["container"]["docker"]
    assert images["node"] == options["node"]["image"]
    assert images["libnetwork"] == options["libnetwork"]["image"]
    assert images["scheduler"].endswith(":" + read_json(UNIVERSE / "package.json")["version"])


def test_config_json_is_the_options_schema_and_universe_valid():
    config = read_json(UNIVERSE / "config.json")
    assert config == read_json(ROOT / "config/options.schema.json") == schema()
    jsonschema.Draft4Validator(read_json(SCHEMAS / "config-schema.json")).validate(config)


def test_every_option_is_passed_to_the_scheduler_by_the_template():
    env = render_app(defaults())["env"]
    assert set(env) == {env_name(name) for name in option_names()}


@pytest.mark.parametrize("options", ["defaults", "custom"])
def test_rendered_app_is_a_valid_single_instance_marathon_app(tmp_path, options):
    raw = defaults() if options == "defaults" else custom_options(tmp_path)
    app = render_app(raw)
    jsonschema.Draft4Validator(MARATHON_APP).validate(app)
    assert app["id"] == "/" + raw["service"]["name"]
    assert (
        app["container"]["docker"]["image"]
        == resource()["assets"]["container"]["docker"]["scheduler"]
    )
    assert app["healthChecks"][0]["path"] == "/v1/health"
    assert app["upgradeStrategy"] == {"minimumHealthCapacity": 0, "maximumOverCapacity": 0}
    assert app["labels"] == {
        "DCOS_PACKAGE_FRAMEWORK_NAME": raw["service"]["name"],
        "DCOS_SERVICE_NAME": raw["service"]["name"],
        "DCOS_SERVICE_PORT_INDEX": "0",
        "DCOS_SERVICE_SCHEME": "http",
        "MARATHON_SINGLE_INSTANCE_APP": "true",
    }


@pytest.mark.parametrize("options", ["defaults", "custom"])
def test_rendered_environment_gives_back_exactly_the_options(tmp_path, options):
    raw = defaults() if options == "defaults" else custom_options(tmp_path)
    env = render_app(raw)["env"]
    assert load_options(None, env).raw == raw


def test_config_show_of_the_rendered_environment_gives_back_the_options(tmp_path):
    from click.testing import CliRunner

    from calico_dcos.cli import main

    raw = custom_options(tmp_path)
    result = CliRunner().invoke(main, ["config", "show"], env=render_app(raw)["env"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == raw


def test_marathon_json_is_the_template_rendered_with_the_defaults():
    app = read_json(ROOT / "marathon.json")
    assert app == render_app(defaults()), "regenerate: python tests/packaging/test_universe.py"
    options = load_options(None, app["env"])
    for name in option_names():
        section, key = name.split(".")
        assert app["env"][env_name(name)] == format_env_value(options[section][key])


def test_no_string_option_can_hold_what_the_template_would_have_to_escape():
    validator = jsonschema.Draft4Validator(schema())
    for name in option_names():
        section, key = name.split(".")
        for bad in ('a"b', "a\\b", "a\nb"):
            assert not validator.is_valid({section: {key: bad}}), (name, bad)


def test_template_never_html_escapes_an_option():
    template = (UNIVERSE / "marathon.json.mustache").read_text()
    assert re.findall(r"(?<!\{)\{\{(?![{#^/])[^}]*\}\}", template) == []


if __name__ == "__main__":
    (ROOT / "marathon.json").write_text(json.dumps(render_app(defaults()), indent=2) + "\n")
