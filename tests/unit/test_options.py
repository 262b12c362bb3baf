"""Options: file, environment, defaults, validation, derived values and `calico-dcos config`."""

import json
import pathlib

import jsonschema
import pytest
from click.testing import CliRunner

from calico_dcos import options as opts
from calico_dcos.cli import main
from calico_dcos.core.budget import RestartBudget
from calico_dcos.options import OptionsError, load_options
from calico_dcos.steps import BY_NAME, AgentView, build_task_info

ROOT = pathlib.Path(__file__).resolve().parents[2]
UNIVERSE_CONFIG_SCHEMA = ROOT.parent / "shared" / "schemas" / "universe" / "config-schema.json"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def errors_of(path, environ):
    with pytest.raises(OptionsError) as caught:
        load_options(path, environ)
    return caught.value.errors


def test_schema_is_draft4_and_universe_valid():
    schema = json.loads((ROOT / "config/options.schema.json").read_text())
    jsonschema.Draft4Validator.check_schema(schema)
    universe = json.loads(UNIVERSE_CONFIG_SCHEMA.read_text())
    jsonschema.Draft4Validator(universe).validate(schema)


def test_package_schema_is_the_config_schema():
    assert opts.SCHEMA_PATH.read_text() == (ROOT / "config/options.schema.json").read_text()


def test_every_non_scalar_option_is_a_string_with_a_default():
    for name in opts.option_names():
        spec = opts.option_spec(name)
        types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
        assert set(types) <= {"string", "integer", "number", "boolean"}, name
        assert "default" in spec, name


def test_no_file_and_no_environment_gives_the_schema_defaults():
    options = load_options(None, {})
    assert options["calico"]["profile"] == "calico-2.6"
    assert options["etcd"]["proxy_mode"] == "auto"
    assert options["rollout"]["max_concurrent_restarts"] == 1
    assert set(options.raw) == {
        "service",
        "calico",
        "etcd",
        "docker",
        "cni",
        "libnetwork",
        "node",
        "rollout",
        "agents",
    }
    assert sum(len(v) for v in options.raw.values()) == len(opts.option_names())


def test_yaml_file_then_environment_then_defaults(tmp_path):
    path = write(tmp_path, "o.yaml", "etcd:\n  proxy_mode: v2\nnode:\n  image: mine:1\n")
    options = load_options(path, {"CALICO_NODE_IMAGE": "env:2"})
    assert options["etcd"]["proxy_mode"] == "v2"
    assert options["node"]["image"] == "env:2"
    assert options["node"]["enable"] is True


def test_json_file(tmp_path):
    path = write(tmp_path, "o.json", json.dumps({"rollout": {"max_concurrent_restarts": "25%"}}))
    assert load_options(path, {})["rollout"]["max_concurrent_restarts"] == "25%"


def test_options_are_read_only():
    options = load_options(None, {})
    with pytest.raises(TypeError):
        options["node"]["image"] = "x"
    options.raw["node"]["image"] = "x"
    assert options["node"]["image"] == ""  # the profile's


def test_environment_values_are_parsed_by_the_schema_type():
    options = load_options(
        None,
        {
            "CALICO_DOCKER_ENABLE": "false",
            "CALICO_ETCD_LISTEN_PORT": "2380",
            "CALICO_NODE_CPUS": "0.5",
            "CALICO_ROLLOUT_MAX_CONCURRENT_RESTARTS": "3",
            "CALICO_SERVICE_PRINCIPAL": "true",
        },
    )
    assert options["docker"]["enable"] is False
    assert options["etcd"]["listen_port"] == 2380
    assert options["node"]["cpus"] == 0.5
    assert options["rollout"]["max_concurrent_restarts"] == 3
    assert options["service"]["principal"] == "true"


def test_bad_environment_value_names_the_variable_and_the_option():
    errors = errors_of(None, {"CALICO_DOCKER_ENABLE": "yes", "CALICO_NODE_MEM": "lots"})
    assert errors == [
        (
            "docker.enable",
            "environment variable CALICO_DOCKER_ENABLE='yes': expected true or false",
        ),
        ("node.mem", "environment variable CALICO_NODE_MEM='lots': expected a decimal number"),
    ]


def test_unknown_keys_are_errors_naming_their_path(tmp_path):
    path = write(tmp_path, "o.json", json.dumps({"node": {"imag": "x"}, "nodes": {}}))
    assert errors_of(path, {}) == [
        ("node.imag", "names no option; did you mean node.image?"),
        ("nodes", "names no option section; did you mean node?"),
    ]
    with pytest.raises(OptionsError) as refused:
        load_options(path, {})
    assert refused.value.lines() == [
        "unknown option node.imag: names no option; did you mean node.image?",
        "unknown option nodes: names no option section; did you mean node?",
    ]


def test_every_schema_error_is_reported_sorted_by_path(tmp_path):
    doc = {
        "rollout": {"max_concurrent_restarts": 0},
        "etcd": {"proxy_mode": "v4", "listen_port": 70000},
        "cni": {"enable": "yes"},
    }
    errors = errors_of(write(tmp_path, "o.json", json.dumps(doc)), {})
    assert [path for path, _ in errors] == [
        "cni.enable",
        "etcd.listen_port",
        "etcd.proxy_mode",
        "rollout.max_concurrent_restarts",
    ]


def test_error_message_lists_each_path():
    with pytest.raises(OptionsError) as caught:
        load_options(None, {"CALICO_SERVICE_NAME": "Bad Name"})
    assert str(caught.value).startswith("service.name: 'Bad Name' is not of the expected form")


def test_unreadable_and_malformed_files(tmp_path):
    missing = str(tmp_path / "missing.json")
    assert errors_of(missing, {}) == [
        ("", f"cannot read options file {missing}: No such file or directory")
    ]
    assert "is not valid JSON or YAML" in errors_of(write(tmp_path, "o.json", "{"), {})[0][1]
    assert "must hold an object" in errors_of(write(tmp_path, "o.yaml", "- 1\n"), {})[0][1]


def test_a_percentage_over_100_says_the_limit():
    errors = errors_of(None, {"CALICO_ROLLOUT_MAX_CONCURRENT_RESTARTS": "150%"})
    assert len(errors) == 1
    path, message = errors[0]
    assert path == "rollout.max_concurrent_restarts"
    assert message.startswith("'150%': a percentage must be a whole number from 1% to 100%")


def test_a_null_option_says_what_is_expected_instead(tmp_path):
    errors = errors_of(write(tmp_path, "o.yaml", "service:\n  name:\n"), {})
    assert errors == [
        (
            "service.name",
            "has no value (null); expected a string; leave it out for the default 'calico'",
        )
    ]


def test_a_wrong_type_names_the_type_in_words(tmp_path):
    errors = errors_of(write(tmp_path, "o.json", '{"rollout": {"stability_seconds": "x"}}'), {})
    assert errors == [("rollout.stability_seconds", "'x' is not a number")]


def test_infinite_and_nan_numbers_are_refused(tmp_path):
    """YAML's `.inf` and `.nan` are numbers to JSON Schema; the state store writes only finite
    ones (`store.encode_document`)."""
    text = "rollout:\n  retry_backoff_seconds: .inf\n  max_backoff_seconds: .nan\n"
    errors = errors_of(write(tmp_path, "o.yaml", text), {})
    assert [path for path, _ in errors] == [
        "rollout.max_backoff_seconds",
        "rollout.retry_backoff_seconds",
    ]
    assert all("not a finite number" in message for _, message in errors)


def test_an_unreadable_file_is_reported_without_an_option_prefix(tmp_path):
    missing = str(tmp_path / "missing.yaml")
    result = CliRunner().invoke(main, ["config", "validate", missing])
    assert result.exit_code == 1
    assert result.output == f"cannot read options file {missing}: No such file or directory\n"


def test_double_quotes_and_backslashes_are_refused_so_the_package_renders_json():
    errors = errors_of(None, {"CALICO_NODE_IMAGE": 'a"b', "CALICO_CNI_PLUGINS_DIR": "c:\\x"})
    from_env = " (from the environment variable {})"
    assert errors == [
        ("cni.plugins_dir", "'c:\\\\x' holds a double quote, backslash or control character"
         + from_env.format("CALICO_CNI_PLUGINS_DIR")),
        ("node.image", "'a\"b' holds a double quote, backslash or control character"
         + from_env.format("CALICO_NODE_IMAGE")),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("endpoints", "override", "store"),
    [
        ("http://a:2379,http://b:2379", "", "etcd://a:2379,b:2379"),
        ("http://localhost:2379", "", "etcd://localhost:2379"),
        (" https://a:2379 , http://b:2379 ", "", "etcd://a:2379,b:2379"),
        ("http://a:2379", "consul://c:8500", "consul://c:8500"),
    ],
)
def test_derived_cluster_store(endpoints, override, store):
    options = load_options(
        None, {"CALICO_ETCD_ENDPOINTS": endpoints, "CALICO_DOCKER_CLUSTER_STORE": override}
    )
    assert opts.derived_cluster_store(options) == store


def test_roles_and_endpoint_lists():
    options = load_options(None, {"CALICO_ETCD_ENDPOINTS": "http://a:2379,http://b:2379"})
    assert opts.roles(options) == ["*", "slave_public"]
    assert opts.etcd_endpoint_list(options) == ["http://a:2379", "http://b:2379"]
    assert opts.etcd_cluster_list(options) == []


@pytest.mark.parametrize(
    ("value", "agents", "budget"),
    [(1, 6, 1), (2, 6, 2), ("50%", 6, 3), ("10%", 6, 1), ("100%", 5, 5), ("33%", 10, 3)],
)
def test_restart_budget(value, agents, budget):
    options = load_options(None, {"CALICO_ROLLOUT_MAX_CONCURRENT_RESTARTS": str(value)})
    rule = RestartBudget.parse(options["rollout"]["max_concurrent_restarts"])
    assert rule.limit(agents) == budget


def test_agent_constraints_like_and_unlike():
    options = load_options(
        None, {"CALICO_AGENTS_CONSTRAINTS": "hostname:LIKE:agent-[0-9]+,rack:UNLIKE:r[12]"}
    )
    constraints = opts.agent_constraints(options)
    assert [(c.field, c.operator, c.regex.pattern) for c in constraints] == [
        ("hostname", "LIKE", "agent-[0-9]+"),
        ("rack", "UNLIKE", "r[12]"),
    ]

    def matches(hostname, attributes):
        return all(c.matches(hostname, attributes) for c in constraints)

    assert matches("agent-3", {"rack": "r3"})
    assert matches("agent-3", {})
    assert not matches("agent-3", {"rack": "r1"})
    assert not matches("agent-3x", {"rack": "r3"})


def test_constraint_with_a_bad_regex_names_the_option():
    errors = errors_of(None, {"CALICO_AGENTS_CONSTRAINTS": "hostname:LIKE:a(b"})
    assert [path for path, _ in errors] == ["agents.constraints"]
    assert "bad regex 'a(b'" in errors[0][1]


def test_node_extra_env_keeps_order_and_values_with_equals():
    options = load_options(None, {"CALICO_NODE_EXTRA_ENV": "B=1,A=x=y,C="})
    assert list(opts.node_extra_env(options).items()) == [("B", "1"), ("A", "x=y"), ("C", "")]


def test_node_extra_env_keeps_spaces_in_values_up_to_calico_nodes_environment():
    """Issue 14: spaces were dropped silently. They reach the TaskInfo's environment as given
    (calico-node reads them from there, no shell in between)."""
    text = "FELIX_A=two words ,FELIX_B= leading,FELIX_C=  "
    options = load_options(None, {"CALICO_NODE_EXTRA_ENV": text})
    expected = {"FELIX_A": "two words ", "FELIX_B": " leading", "FELIX_C": "  "}

    assert opts.node_extra_env(options) == expected
    agent = AgentView("M1-S1", "agent-1")
    info = build_task_info(BY_NAME["node"], options, agent, "t", "*", "http://scheduler:8080")
    env = {v["name"]: v["value"] for v in info["command"]["environment"]["variables"]}
    assert {k: env[k] for k in expected} == expected


def test_node_extra_env_refuses_what_it_cannot_keep_naming_the_option():
    for text in ("A=1, B=2", "A=1,,B=2", "A=1,"):
        with pytest.raises(opts.OptionsError) as failed:
            load_options(None, {"CALICO_NODE_EXTRA_ENV": text})
        assert [option for option, _ in failed.value.errors] == ["node.extra_env"]


def test_redacted_hides_url_passwords_and_keeps_secret_paths():
    options = load_options(
        None,
        {
            "CALICO_ETCD_ENDPOINTS": "https://calico:s3cret@etcd:2379",
            "CALICO_SERVICE_SECRET_FILE": "/run/secrets/mesos",
        },
    )
    shown = opts.redacted(options)
    assert shown["etcd"]["endpoints"] == "https://calico:***@etcd:2379"
    assert shown["service"]["secret_file"] == "/run/secrets/mesos"
    assert "s3cret" not in repr(options)


def test_read_secret_strips_the_newline(tmp_path):
    assert opts.read_secret(write(tmp_path, "s", "hunter2\n")) == "hunter2"
    with pytest.raises(OptionsError) as caught:
        opts.read_secret(str(tmp_path / "none"), "service.secret_file")
    assert caught.value.errors[0][0] == "service.secret_file"


def test_env_value_formatting_round_trips_every_default():
    for name in opts.option_names():
        spec = opts.option_spec(name)
        text = opts.format_env_value(spec["default"])
        assert opts.parse_env_value(spec, text) == spec["default"], name


def test_cli_validate_show_and_schema(tmp_path):
    runner = CliRunner()
    good = write(tmp_path, "good.yaml", "service:\n  secret_file: /run/secret\n")
    bad = write(tmp_path, "bad.yaml", "rollout:\n  max_concurrent_restarts: 0\n")
    result = runner.invoke(main, ["config", "validate", good])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["config", "validate", bad])
    assert result.exit_code == 1
    assert "invalid option rollout.max_concurrent_restarts" in result.output
    result = runner.invoke(main, ["config", "show", good], env={"CALICO_NODE_IMAGE": "n:1"})
    shown = json.loads(result.output)
    assert shown["node"]["image"] == "n:1"
    assert shown["service"]["secret_file"] == "/run/secret"
    result = runner.invoke(main, ["config", "schema"])
    assert json.loads(result.output) == opts.schema()


def test_cli_show_never_reads_a_secret_file(tmp_path):
    secret = write(tmp_path, "secret", "hunter2\n")
    result = CliRunner().invoke(
        main, ["config", "show"], env={"CALICO_SERVICE_SECRET_FILE": secret}
    )
    assert result.exit_code == 0
    assert "hunter2" not in result.output


@pytest.mark.parametrize(
    "example",
    sorted(p.name for p in (ROOT / "config").iterdir() if p.name != "options.schema.json"),
)
def test_every_example_options_file_is_valid(example):
    load_options(str(ROOT / "config" / example), {})


def test_health_check_interval_is_at_least_one_second():
    fast = load_options(None, {"CALICO_NODE_HEALTH_CHECK_INTERVAL_SECONDS": "1"})
    errors = errors_of(None, {"CALICO_NODE_HEALTH_CHECK_INTERVAL_SECONDS": "0.5"})

    assert fast["node"]["health_check_interval_seconds"] == 1
    assert [path for path, _ in errors] == ["node.health_check_interval_seconds"]


def test_a_yaml_error_names_the_file(tmp_path):
    path = write(tmp_path, "o.yaml", "rollout:\n  max_concurrent_restarts: [\n")
    [(_, message)] = errors_of(path, {})
    assert f'in "{path}", line' in message and "<unicode string>" not in message
