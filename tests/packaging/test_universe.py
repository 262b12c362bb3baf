"""The DC/OS Universe package, rendered as DC/OS's package manager (Cosmos) renders it.

`scripts/universe.py` renders `marathon.json.mustache` as Cosmos does (defaults merged,
strings JSON-encoded, no HTML escaping; see its docstring for the sources). The result is
checked against Marathon's app schema (`marathon_schema.py`) and the package against the
Universe's own schemas (shared/schemas/universe), and read back by the scheduler's own options
loader, which must find exactly the options given. `test_cosmos_uninstall.py` runs it.

Regenerate `universe/config.json` and `marathon.json` after changing the options schema or the
template: `make universe`.
"""

import json
import pathlib
import re
import tomllib
import urllib.parse

import jsonschema
import pytest

from calico_dcos import matrix
from calico_dcos.options import env_name, load_options, option_names, schema
from scripts import universe as u
from tests.packaging.marathon_schema import MARATHON_APP

ROOT = pathlib.Path(__file__).resolve().parents[2]
UNIVERSE = ROOT / "universe"
# The Universe's own schemas, in the workplace's shared/ folder beside the repository.
SCHEMAS = ROOT.parent / "shared" / "schemas" / "universe"
# mesosphere/universe `repo/packages/C/calico/{0..3}/package.json`: the 2016 framework.
OLD_CALICO = {("calico", v) for v in ("0.1.0", "0.2.0", "0.3.1", "0.4.0")}

# Every value a shell, JSON or HTML escaper could trip on that the options schema allows.
AWKWARD = "it's $(not) <a> & b=c `x` ; é"
CUSTOM = {
    "service": {
        "name": "calico-net",
        "master": "zk://zk-1:2181,zk-2:2181/mesos",
        "state": "zk://zk-1:2181,zk-2:2181/calico-net-state",
        "principal": AWKWARD,
        "secret_file": "/run/secrets/it's mine",
        "failover_timeout_seconds": 1209600.5,
        "api_port": 10055,
        "artifacts_url": "http://10.0.0.5:10055/?a=1&b=2",
        "agent_python": "/opt/py 3/bin/python3",
        "log_level": "debug",
        "uninstall_revert_hosts": True,
    },
    "calico": {
        "profile": "calico-v3",
        "ipv4pool_cidr": "10.32.0.0/12",
        "ipv4pool_encapsulation": "vxlan",
        "ipv4pool_nat_outgoing": False,
        "default_profile_policy": "plugin-default",
    },
    "etcd": {
        "run_proxy": False,
        "proxy_mode": "v3",
        "cluster_endpoints": "http://e1:2379,http://e2:2379",
        "listen_address": "agent-ip",
        "listen_port": 12379,
        "binary_uri": "http://mirror.local/etcd-v3.4.23-linux-amd64.tar.gz",
        "cpus": 0.25,
    },
    "docker": {"enable": False, "cluster_store": "etcd://e1:2379", "mem": 96},
    "cni": {
        "plugins_dir": "/opt/cni bin/",
        "config_name": "10-calico.conf",
        "log_level": "warning",
        "calico_uri": "http://mirror.local/calico-amd64?a=1&b=2",
        "restart_agent": True,
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


def project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def expected_options(user: dict) -> dict:
    """What the scheduler must end up with: the user's options over the schema's defaults,
    with the package's own assets where the user left them, and the state under the name."""
    res = u.resource()
    options = load_options(None, {}).raw
    for (section, key), name in u.asset_options(schema(), res).items():
        options[section][key] = dict(u.assets(res))[name]
    name = user.get("service", {}).get("name", options["service"]["name"])
    options["service"]["state"] = f"zk://master.mesos:2181/dcos-service-{name}"
    return u.merge(options, user)


@pytest.fixture(params=["defaults", "custom"])
def user_options(request):
    return {} if request.param == "defaults" else CUSTOM


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


def test_package_cannot_be_confused_with_the_2016_calico_package():
    """Cosmos keeps the first repository's copy of a (name, version); Mesosphere's Universe
    serves `calico` 0.1.0–0.4.0 to every DC/OS, whose config.json would drop our options."""
    package = read_json(UNIVERSE / "package.json")
    assert (package["name"], package["version"]) not in OLD_CALICO
    assert package["name"] == "calico-dcos" and package["version"] == project()["version"]
    for field in ("scm", "website"):
        assert "projectcalico/calico-dcos" not in package[field]
        assert "calico-containers" not in package[field]
    notes = package["postInstallNotes"]
    assert notes == u.post_install_notes(package["version"], u.resource()), "make universe"
    assert f"calico-dcos {package['version']}" in notes and "not the 2016 'calico'" in notes
    assert matrix.CALICO_26.node_image in notes, "the notes say which Calico is installed"
    assert "calico-dcos status" not in notes, "the package ships no DC/OS CLI"
    assert "/service/<service.name>/" in notes


def test_package_metadata_is_the_projects():
    """`make dist` stamps the version, maintainer and URLs from pyproject.toml."""
    from scripts.dist import package_metadata

    package = read_json(UNIVERSE / "package.json")
    assert {k: package[k] for k in package_metadata()} == package_metadata()
    # DC/OS 1.10 ships Python 3.5; the installer needs 3.6 (dcos/dcos packages/python).
    assert package["minDcosReleaseVersion"] == "1.11"


def test_resource_json_is_valid_with_the_dist_artifact_and_icons():
    res = u.resource()
    jsonschema.Draft4Validator(read_json(SCHEMAS / "v3-resource-schema.json")).validate(res)
    pyz = urllib.parse.urlsplit(res["assets"]["uris"]["calico-dcos-pyz"]).path.rsplit("/", 1)[1]
    assert re.fullmatch(
        rf"calico-dcos-{re.escape(project()['version'])}-sha256-[0-9a-f]{{64}}\.pyz", pyz
    )
    assert set(res["images"]) == {"icon-small", "icon-medium", "icon-large"}
    assert res["assets"]["container"]["docker"]["scheduler"].startswith("python:3.11-")


def test_every_asset_is_used_and_every_option_default_asset_comes_from_resource_json():
    template = (UNIVERSE / "marathon.json.mustache").read_text()
    res = u.resource()
    for name, _ in u.assets(res):
        assert "{{" + name + "}}" in template, f"{name} is in resource.json but not used"
    used = set(re.findall(r"\{\{(resource\.[^}]+)\}\}", template))
    assert used <= {name for name, _ in u.assets(res)}, "the template names a missing asset"
    filled = u.asset_options(schema(), res)
    # The Calico parts' defaults are calico.profile's (calico_dcos/matrix.py), not assets.
    assert set(filled) == {("etcd", "binary_uri")}
    for (section, key), name in filled.items():
        option = f"{section}.{key}"
        fallback = (
            f"{{{{#{option}}}}}{{{{{option}}}}}{{{{/{option}}}}}{{{{^{option}}}}}{{{{{name}}}}}"
        )
        assert f'"{env_name(option)}": "{fallback}{{{{/{option}}}}}"' in template, option


def test_config_json_is_the_options_schema_with_package_filled_defaults_and_universe_valid():
    config = read_json(UNIVERSE / "config.json")
    assert read_json(ROOT / "config/options.schema.json") == schema()
    assert config == u.package_config(schema(), u.resource()), "regenerate: make universe"
    jsonschema.Draft4Validator(read_json(SCHEMAS / "config-schema.json")).validate(config)


def test_every_option_is_passed_to_the_scheduler_by_the_template():
    env = u.cosmos_render()["env"]
    assert set(env) == {env_name(name) for name in option_names()}


def test_rendered_app_is_a_valid_marathon_app(user_options):
    app = u.cosmos_render(user_options)
    jsonschema.Draft4Validator(MARATHON_APP).validate(app)
    name = user_options.get("service", {}).get("name", "calico")
    assert app["id"] == "/" + name and app["instances"] == 1


def test_rendered_app_runs_the_dist_artifact_under_the_mesos_containerizer():
    """UCR (`"type": "MESOS"`) on a public Python image: the Docker step restarts dockerd on
    every agent, which would stop a scheduler run by the Docker containerizer."""
    app, res = u.cosmos_render(), u.resource()
    assert app["container"] == {
        "type": "MESOS",
        "docker": {"image": res["assets"]["container"]["docker"]["scheduler"]},
    }
    pyz = res["assets"]["uris"]["calico-dcos-pyz"]
    assert app["fetch"] == [{"uri": pyz, "executable": False, "extract": False, "cache": True}]
    assert app["cmd"].endswith('exec python3 "$pyz" run')
    assert app["taskKillGracePeriodSeconds"] >= 10  # the scheduler stops within 10 s


def test_rendered_app_is_uninstalled_the_sdk_way_and_served_by_admin_router():
    """Cosmos sets SDK_UNINSTALL only on apps labelled DCOS_COMMONS_UNINSTALL (dcos/cosmos
    `UninstallHandler.scala`); Admin Router routes /service/<name>/ by the DCOS_SERVICE_*
    labels (dcos/dcos `packages/adminrouter/extra/src/README.md`). As dcos-commons' packages
    (`frameworks/helloworld/universe/marathon.json.mustache`)."""
    app = u.cosmos_render(CUSTOM)
    assert {k: v for k, v in app["labels"].items() if not k.startswith("DCOS_PACKAGE_")} | {
        "DCOS_PACKAGE_FRAMEWORK_NAME": app["labels"]["DCOS_PACKAGE_FRAMEWORK_NAME"]
    } == {
        "DCOS_COMMONS_API_VERSION": "v1",
        "DCOS_COMMONS_UNINSTALL": "true",
        "DCOS_PACKAGE_FRAMEWORK_NAME": "calico-net",
        "MARATHON_SINGLE_INSTANCE_APP": "true",
        "DCOS_SERVICE_NAME": "calico-net",
        "DCOS_SERVICE_PORT_INDEX": "0",
        "DCOS_SERVICE_SCHEME": "http",
    }
    assert app["labels"]["DCOS_PACKAGE_NAME"] == "calico-dcos"


def test_health_check_as_the_sdk_packages_set_it():
    """dcos-commons' packages: MESOS_HTTP /v1/health, 900 s grace, every 30 s, 30 s timeout,
    maxConsecutiveFailures 0 (Mesos kills on the first failure after the grace: so only
    "broken" fails; "waiting" answers 202, which Marathon counts as passing)."""
    (check,) = u.cosmos_render()["healthChecks"]
    assert check == {
        "protocol": "MESOS_HTTP",
        "path": "/v1/health",
        "portIndex": 0,
        "gracePeriodSeconds": 900,
        "intervalSeconds": 30,
        "timeoutSeconds": 30,
        "maxConsecutiveFailures": 0,
    }


def test_rendered_environment_gives_back_exactly_the_options(user_options):
    env = u.cosmos_render(user_options)["env"]
    assert load_options(None, env).raw == expected_options(user_options)


def test_strict_mode_mounts_the_service_account_secret_as_the_sdk_packages_do():
    """dcos-commons' packages (`frameworks/helloworld/universe/marathon.json.mustache`): the
    DC/OS secret named by an option becomes `serviceCredential`, given to the scheduler as
    $DCOS_SERVICE_ACCOUNT_CREDENTIAL; without the option, no secret at all."""
    strict = {"service": {"strict": True, "service_account_secret": "calico-dcos/account"}}
    app = u.cosmos_render(strict)

    jsonschema.Draft4Validator(MARATHON_APP).validate(app)
    assert app["secrets"] == {"serviceCredential": {"source": "calico-dcos/account"}}
    assert app["env"]["DCOS_SERVICE_ACCOUNT_CREDENTIAL"] == {"secret": "serviceCredential"}
    options = load_options(None, {k: v for k, v in app["env"].items() if isinstance(v, str)})
    assert options["service"]["strict"] is True
    assert options["service"]["service_account_credential_file"] == ""  # the env var is used
    plain = u.cosmos_render()
    assert "secrets" not in plain and "DCOS_SERVICE_ACCOUNT_CREDENTIAL" not in plain["env"]


def test_each_instance_keeps_its_state_under_its_own_name():
    states = {
        name: u.cosmos_render({"service": {"name": name}})["env"]["CALICO_SERVICE_STATE"]
        for name in ("calico", "calico-2")
    }
    assert states == {
        "calico": "zk://master.mesos:2181/dcos-service-calico",
        "calico-2": "zk://master.mesos:2181/dcos-service-calico-2",
    }


def test_the_package_refuses_a_state_inside_the_container():
    with pytest.raises(jsonschema.ValidationError, match="does not match"):
        u.cosmos_render({"service": {"state": "/var/lib/calico"}})


def test_strings_are_json_encoded_not_html_escaped_and_numbers_rendered_as_java_does():
    env = u.cosmos_render(CUSTOM)["env"]
    assert env["CALICO_SERVICE_PRINCIPAL"] == AWKWARD
    assert env["CALICO_SERVICE_ARTIFACTS_URL"] == "http://10.0.0.5:10055/?a=1&b=2"
    assert env["CALICO_SERVICE_FAILOVER_TIMEOUT_SECONDS"] == "1209600.5"
    assert env["CALICO_ETCD_CPUS"] == "0.25" and env["CALICO_ETCD_LISTEN_PORT"] == "12379"
    assert env["CALICO_SERVICE_UNINSTALL_REVERT_HOSTS"] == "true"
    assert env["CALICO_DOCKER_ENABLE"] == "false"
    assert u.to_mustache({"x": 'a"b\\c\n'})["x"] == 'a\\"b\\\\c\\n'  # valid inside "…"
    assert u.java_double(1.5e7) == "1.5E7" and u.java_double(0.0001) == "1.0E-4"


def local_universe(res: dict, http_root: str, registry: str) -> dict:
    """What mesosphere/universe `scripts/local-universe.py` (`prepare_repository`) does to
    resource.json: every asset URI to `http_root/<package>/<version>/uris/<file name>`, every
    image to `<registry>/<image>`."""
    out = json.loads(json.dumps(res))
    files = {name: urllib.parse.urlsplit(uri).path for name, uri in res["assets"]["uris"].items()}
    out["assets"]["uris"] = {
        name: f"{http_root}/calico-dcos/0/uris/{pathlib.PurePath(path).name}"
        for name, path in files.items()
    }
    out["assets"]["container"]["docker"] = {
        name: f"{registry}/{image}" for name, image in res["assets"]["container"]["docker"].items()
    }
    return out


def test_an_air_gapped_install_fetches_and_pulls_only_from_the_local_universe():
    mirrored = local_universe(u.resource(), "http://master.mesos:8082/repo", "master.mesos:5000")
    app = u.cosmos_render(res=mirrored)
    text = json.dumps({k: v for k, v in app.items() if k != "labels"})
    assert "github.com" not in text
    env = app["env"]
    assert app["fetch"][0]["uri"].startswith("http://master.mesos:8082/repo/calico-dcos/0/uris/")
    assert app["container"]["docker"]["image"] == "master.mesos:5000/python:3.11-slim-bookworm"
    assert env["CALICO_ETCD_BINARY_URI"].startswith("http://master.mesos:8082/repo/")
    # The profile's Calico parts are not package assets: an air-gapped cluster names its
    # mirrors in the options (cni.calico_uri, cni.calico_ipam_uri, node.image, …).
    for name in ("CALICO_CNI_CALICO_URI", "CALICO_CNI_CALICO_IPAM_URI", "CALICO_NODE_IMAGE"):
        assert env[name] == "", name


def test_marathon_json_is_the_template_rendered_with_the_defaults():
    assert read_json(ROOT / "marathon.json") == u.plain_marathon_app(), "regenerate: make universe"
    assert not any(
        k.startswith("DCOS_PACKAGE_N") for k in read_json(ROOT / "marathon.json")["labels"]
    )
