"""The fresh-user trial's option findings, each with the trial's exact case: the error names
the option's path and says how to write it."""

import pytest

from calico_dcos import option_rules
from calico_dcos.options import OptionsError, load_options, option_names, option_spec
from tests.unit.test_option_rules import errors_for


def refused(env: dict[str, str], path: str | None = None) -> OptionsError:
    with pytest.raises(OptionsError) as caught:
        load_options(path, env)
    return caught.value


# --- 1. service.master as pymesos reads it (pymesos scheduler.py: `master.split(':', 2)`)


def test_the_trials_zk_url_without_its_colon_is_refused_naming_the_fix():
    message = errors_for({"CALICO_SERVICE_MASTER": "zk//127.0.0.1:2181/mesos"})["service.master"]
    assert "misspelled ZooKeeper URL" in message
    assert "write zk://127.0.0.1:2181/mesos" in message


MASTERS_PYMESOS_CANNOT_SPLIT = [
    ("leader.mesos:5050/mesos", "has a path"),  # int('5050/mesos')
    ("a.mesos:5050,b.mesos:5050", "one master"),  # 'a.mesos', '5050,b.mesos', '5050'
    ("[2001:db8::1]:5050", "IPv6"),  # split(':', 2) gives three parts
    ("leader.mesos:http", "not a number"),
    ("leader.mesos:0", "not a number from 1 to 65535"),
    ("http://leader.mesos:5050", "no http:// master"),
    ("zk:/127.0.0.1:2181/mesos", "write zk://127.0.0.1:2181/mesos"),
    ("zk://127.0.0.1:21x81/mesos", "Port could not be cast"),
    ("zk:///mesos", "has no host"),
    ("zk://127.0.0.1:2181", "needs a path, e.g. zk://master.mesos:2181/mesos"),
    ("zk://127.0.0.1:2181/mesos?timeout=5", "query for part of the path"),  # kazoo's chroot
]


@pytest.mark.parametrize(("master", "words"), MASTERS_PYMESOS_CANNOT_SPLIT)
def test_a_master_pymesos_would_crash_on_is_an_option_error(master, words):
    message = errors_for({"CALICO_SERVICE_MASTER": master})["service.master"]
    assert words in message
    if not message.startswith(f"{master!r} is a misspelled"):
        assert "zk://master.mesos:2181/mesos" in message  # a correct example


@pytest.mark.parametrize(
    "master",
    ["leader.mesos", "leader.mesos:5050", "192.0.2.1:5050", "zk:2181",
     "zk://u:p@192.0.2.1:2181,192.0.2.2:2181/mesos"],
)  # fmt: skip
def test_masters_pymesos_reads_pass(master):
    assert errors_for({"CALICO_SERVICE_MASTER": master}) == {}


@pytest.mark.parametrize(
    ("state", "words"),
    [
        ("zk://h:2181/calico?session_timeout=abc", "session_timeout is not a number of seconds"),
        ("zk://h:2181/calico?sessiontimeout=5", "unknown option 'sessiontimeout'"),
    ],
)
def test_a_state_url_the_store_would_refuse_at_start_is_an_option_error(state, words):
    """The store's `parse_url` reads these at start-up; `config validate` says it first."""
    assert words in errors_for({"CALICO_SERVICE_STATE": state})["service.state"]
    ok = "zk://h:2181/calico?session_timeout=5&connect_timeout=3"
    assert errors_for({"CALICO_SERVICE_STATE": ok}) == {}


def test_a_listen_address_no_one_can_bind_is_refused():
    message = errors_for({"CALICO_ETCD_LISTEN_ADDRESS": "300.1.1.1"})["etcd.listen_address"]
    assert "not an IPv4 address (e.g. 127.0.0.1, or agent-ip)" in message


def test_a_strict_master_with_a_path_is_refused_with_the_https_form():
    env = {"CALICO_SERVICE_STRICT": "true", "CALICO_SERVICE_MASTER": "https://m:5050/mesos"}
    message = errors_for(env)["service.master"]
    assert "has a path" in message and "https://leader.mesos:5050" in message
    env["CALICO_SERVICE_MASTER"] = "https://m:5050/"
    assert "service.master" not in errors_for(env)


def test_run_refuses_the_trials_master_before_pymesos_sees_it(tmp_path):
    from click.testing import CliRunner

    from calico_dcos.cli import main

    env = {
        "CALICO_SERVICE_STATE": str(tmp_path / "state"),
        "CALICO_SERVICE_MASTER": "zk//127.0.0.1:2181/mesos",
    }
    result = CliRunner().invoke(main, ["run"], env=env)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("invalid option service.master: ")
    assert "write zk://127.0.0.1:2181/mesos" in result.output
    assert "Traceback" not in result.output


def test_unreadable_zookeeper_credentials_that_look_like_them_are_not_echoed():
    from calico_dcos.store import StoreError
    from calico_dcos.store.zk import read_credentials

    with pytest.raises(StoreError) as caught:
        read_credentials("super:s3cret")
    assert "s3cret" not in str(caught.value) and "not shown" in str(caught.value)


def test_run_checks_its_master_flag_by_the_same_rule(tmp_path):
    from click.testing import CliRunner

    from calico_dcos.cli import main

    env = {"CALICO_SERVICE_STATE": str(tmp_path / "state")}
    result = CliRunner().invoke(main, ["run", "--master", "zk//127.0.0.1:2181/mesos"], env=env)
    assert result.exit_code == 2, result.output
    assert "invalid --master (it overrides service.master)" in result.output
    assert "write zk://127.0.0.1:2181/mesos" in result.output


def wrong_values(option: str) -> list[object]:
    """Values of the wrong type and form for `option`."""
    spec = option_spec(option)
    values: list[object] = [[1], {"a": 1}, None]
    values.append("x" if spec["type"] != "string" else 7)
    if "enum" in spec:
        values.append("no-such-value")
    return values


@pytest.mark.parametrize("option", option_names())
def test_no_wrong_value_of_any_option_crashes_validation(option):
    """Every rule that reads another option must not run on that option's wrong value
    (calico.profile 'calico-3' used to end `config validate` with a KeyError)."""
    section, key = option.split(".", 1)
    for value in wrong_values(option):
        with pytest.raises(OptionsError) as caught:  # not a KeyError or a TypeError
            load_options(None, {}, defaults={section: {key: value}})
        assert option in dict(caught.value.errors)
    everything: dict = {}
    for name in option_names():
        section, key = name.split(".", 1)
        everything.setdefault(section, {})[key] = wrong_values(name)[-1]
    with pytest.raises(OptionsError):
        load_options(None, {}, defaults=everything)


# --- 2. One run lists every error


def test_semantic_errors_are_reported_beside_schema_errors():
    error = refused({
        "CALICO_DOCKER_CPUS": "x",  # a schema error
        "CALICO_SERVICE_ROLES": "",
        "CALICO_CALICO_IPV4POOL_CIDR": "172.29.0.0/33",
        "CALICO_CALICO_IPV4POOL_ENCAPSULATION": "vxlan",
        "CALICO_CALICO_PROFILE": "calico-2.6",
    })  # fmt: skip
    errors = dict(error.errors)
    assert "docker.cpus" in errors
    assert "e.g. 172.29.0.0/16" in errors["calico.ipv4pool_cidr"]
    assert "'vxlan' with calico.profile calico-2.6" in errors["calico.ipv4pool_encapsulation"]


def test_a_wrong_profile_still_lets_every_other_check_run_and_says_more_follow(tmp_path):
    options = tmp_path / "options.yaml"
    options.write_text(
        "calico: {profile: calico-3, ipv4pool_cidr: 172.29.0.0/33}\n"
        "node: {networking_backend: vxlan}\n"
    )
    error = refused({}, str(options))
    errors = dict(error.errors)
    assert "is not one of" in errors["calico.profile"]
    assert "e.g. 172.29.0.0/16" in errors["calico.ipv4pool_cidr"]
    assert "'vxlan' with calico.ipv4pool_encapsulation 'ipip'" in errors["node.networking_backend"]
    assert error.pending > 0
    assert error.lines()[-1].startswith(f"fix the errors above, then {error.pending} more checks")


def test_a_non_url_cluster_endpoint_is_reported_with_the_docker_errors_under_calico_v3():
    errors = errors_for({
        "CALICO_CALICO_PROFILE": "calico-v3",
        "CALICO_ETCD_CLUSTER_ENDPOINTS": "etcd.example:2379,notaurl",
    })  # fmt: skip
    assert "'notaurl' has no port" in errors["etcd.cluster_endpoints"]
    assert "docker.enable" in errors and "libnetwork.enable" in errors


def test_rules_that_read_other_options_declare_them():
    assert set(option_rules.READS) <= set(option_rules.RULES)


# --- 3. A secret where its file's path belongs

TRIAL_SECRET = "hunter2-my-actual-mesos-secret"
TRIAL_TOKEN = "3f" * 32  # 64 hex characters, as `openssl rand -hex 32` prints


@pytest.mark.parametrize(
    ("variable", "option", "value"),
    [
        ("CALICO_SERVICE_SECRET_FILE", "service.secret_file", TRIAL_SECRET),
        ("CALICO_SERVICE_API_TOKEN_FILE", "service.api_token_file", TRIAL_TOKEN),
        ("CALICO_SERVICE_ZK_CREDENTIALS_FILE", "service.zk_credentials_file", "super:s3cret"),
        ("CALICO_SERVICE_SECRET_FILE", "service.secret_file", "my secret words"),
        ("CALICO_SERVICE_SERVICE_ACCOUNT_CREDENTIAL_FILE",
         "service.service_account_credential_file", '{"uid": "calico", "private_key": "k"}'),
    ],
)  # fmt: skip
def test_a_secret_given_as_its_file_is_refused_without_being_shown(variable, option, value):
    error = refused({variable: value})
    message = dict(error.errors)[option]
    assert "PATH of a file holding the secret" in message
    assert value not in str(error) and value not in "\n".join(error.lines())


@pytest.mark.parametrize(
    "path",
    ["secret", "mesos-secret", "zk_credentials", "./" + TRIAL_SECRET, "/run/secrets/it's mine"],
)
def test_relative_and_absolute_secret_paths_pass(path):
    assert errors_for({"CALICO_SERVICE_SECRET_FILE": path}) == {}


def test_an_unreadable_secret_file_that_looks_like_a_secret_is_not_echoed(tmp_path):
    from calico_dcos.options import read_secret

    with pytest.raises(OptionsError) as caught:
        read_secret(TRIAL_SECRET, "service.secret_file")
    assert TRIAL_SECRET not in str(caught.value)
    assert "not shown" in str(caught.value)
    with pytest.raises(OptionsError) as caught:
        read_secret(str(tmp_path / "missing"), "service.secret_file")
    assert str(tmp_path / "missing") in str(caught.value)  # a path is worth showing


def test_config_show_never_prints_a_secret_given_as_its_file():
    from click.testing import CliRunner

    from calico_dcos.cli import main

    result = CliRunner().invoke(
        main, ["config", "show"], env={"CALICO_SERVICE_SECRET_FILE": TRIAL_SECRET}
    )
    assert result.exit_code == 1
    assert TRIAL_SECRET not in result.output
    assert "invalid option service.secret_file" in result.output


# --- 6. Small ones


def test_roles_given_as_a_list_say_the_comma_separated_form(tmp_path):
    options = tmp_path / "options.yaml"
    options.write_text("service:\n  roles: ['*', 'slave_public']\n")
    error = refused({}, str(options))
    assert error.lines() == [
        "invalid option service.roles: ['*', 'slave_public'] is a list; this option is one "
        "comma-separated string: '*,slave_public'"
    ]


@pytest.mark.parametrize(
    ("variable", "hint"),
    [
        ("CALICO_IPV4POOL_CIDR", "did you mean CALICO_CALICO_IPV4POOL_CIDR?"),
        ("CALICO_MASTER", "did you mean CALICO_SERVICE_MASTER?"),
        ("CALICO_LOG_LEVEL", "did you mean CALICO_SERVICE_LOG_LEVEL or CALICO_CNI_LOG_LEVEL?"),
        ("CALICO_NETWORKING_BACKEND", "did you mean CALICO_NODE_NETWORKING_BACKEND?"),
    ],
)
def test_a_variable_without_its_section_gets_a_did_you_mean(variable, hint):
    error = refused({variable: "x"})
    [line] = error.lines()
    assert line.startswith(f"unknown environment variable {variable}: names no option; {hint}")


@pytest.mark.parametrize("variable", ["CALICO_IPV4POOL_CIDR", "CALICO_NETWORKING_BACKEND"])
def test_calico_nodes_own_variable_of_an_options_name_says_both_readings(variable):
    """calico/node reads these names (Calico's "Configuring calico/node" reference): exported
    for it in an operator's shell, the error must not only suggest our option."""
    [line] = refused({variable: "x"}).lines()
    assert "calico/node reads a variable of this name, this program does not" in line
    assert "unset it here" in line


def test_a_variable_only_ours_is_not_said_to_be_calico_nodes():
    [line] = refused({"CALICO_MASTER": "x"}).lines()
    assert "calico/node" not in line


@pytest.mark.parametrize(
    "variable",
    ["CALICO_NODENAME", "CALICO_ROUTER_ID", "CALICO_DCOS_URL", "CALICO_TEST_AGENT_PYTHON"],
)
def test_calicos_own_and_the_projects_other_variables_are_left_alone(variable):
    assert errors_for({variable: "x"}) == {}


def test_readme_lists_every_option_section():
    import pathlib

    from calico_dcos.options import schema

    readme = (pathlib.Path(__file__).parents[2] / "README.md").read_text()
    listed = readme.split("Sections: ", 1)[1].split(". Examples", 1)[0]
    assert [s.strip(" `\n") for s in listed.split(",")] == list(schema()["properties"])


def test_the_trials_roles_as_a_json_list_in_the_environment_say_the_comma_separated_form(
    tmp_path,
):
    """The trial: `CALICO_SERVICE_ROLES='["*","slave_public"]' calico-dcos config validate`
    (Marathon's env written as JSON) got only "holds a double quote…"."""
    from click.testing import CliRunner

    from calico_dcos.cli import main

    env = {"CALICO_SERVICE_ROLES": '["*","slave_public"]'}
    options = tmp_path / "options.yaml"
    options.write_text("service:\n  name: calico\n")
    result = CliRunner().invoke(main, ["config", "validate", str(options)], env=env)
    assert result.exit_code != 0
    assert (
        """invalid option service.roles: '["*","slave_public"]' is a JSON list; this option is """
        "one comma-separated string: '*,slave_public' (from the environment variable "
        "CALICO_SERVICE_ROLES)"
    ) in result.output
    assert "double quote" not in result.output


@pytest.mark.parametrize(
    ("option", "text", "meant"),
    [
        ("service.roles", '["*", "slave_public"]', "*,slave_public"),
        ("etcd.endpoints", '["http://a:2379","http://b:2379"]', "http://a:2379,http://b:2379"),
        ("etcd.cluster_endpoints", '["http://a:2380"]', "http://a:2380"),
        ("node.extra_env", '["FELIX_LOGSEVERITYSCREEN=info"]', "FELIX_LOGSEVERITYSCREEN=info"),
        ("agents.constraints", '["hostname:LIKE:a.*","rack:UNLIKE:r1"]',
         "hostname:LIKE:a.*,rack:UNLIKE:r1"),
    ],
)  # fmt: skip
def test_every_list_like_option_as_a_json_list_says_the_string_to_write(option, text, meant):
    from calico_dcos.options import LIST_LIKE_OPTIONS, env_name

    assert option in LIST_LIKE_OPTIONS
    message = errors_for({env_name(option): text})[option]
    assert f"is a JSON list; this option is one comma-separated string: {meant!r}" in message


def test_every_comma_separated_string_option_is_list_like():
    from calico_dcos.options import LIST_LIKE_OPTIONS

    comma_separated = {
        option
        for option in option_names()
        if option_spec(option)["type"] == "string"
        and "comma-separated" in option_spec(option)["description"]
    }
    assert comma_separated == set(LIST_LIKE_OPTIONS)


# --- Secret-file options whose file cannot be read: the value is shown only as a path


BARE_NAME = (
    "the file it names does not exist (a bare name of 7 characters: if that is the secret "
    "itself, put it in a file and give its path)"
)


def _unreadable_secret_words(option: str, value: str) -> str:
    """What each reader of a secret option says when the file is not there."""
    from calico_dcos import service
    from calico_dcos.options import env_name, read_secret
    from calico_dcos.store import StoreError
    from calico_dcos.store.zk import read_credentials

    env = {env_name(option): value}
    if option == "service.service_account_credential_file":
        env.update({"CALICO_SERVICE_STRICT": "true", "CALICO_SERVICE_PRINCIPAL": "calico"})
    options = load_options(None, env)  # a bare name is a legitimate sandbox path
    readers = {
        "service.api_token_file": lambda: service.api_token(options),
        "service.secret_file": lambda: read_secret(value, option),  # as the scheduler does
        "service.service_account_credential_file": lambda: service.strict_tokens(options, {}),
        "service.zk_credentials_file": lambda: read_credentials(value),
    }
    with pytest.raises((OptionsError, StoreError)) as caught:
        readers[option]()
    if isinstance(caught.value, OptionsError):
        return "\n".join(caught.value.lines())
    return str(caught.value)


@pytest.mark.parametrize("option", option_rules.SECRET_FILE_OPTIONS)
def test_the_trials_bare_name_for_a_secret_file_is_not_echoed_when_unreadable(option):
    """The trial: `CALICO_SERVICE_API_TOKEN_FILE=hunter2` passed `config validate` and `run`
    logged `cannot read secret file hunter2`: a short password in the log."""
    words = _unreadable_secret_words(option, "hunter2")
    assert option in words
    assert BARE_NAME in words
    assert "hunter2" not in words


@pytest.mark.parametrize("option", option_rules.SECRET_FILE_OPTIONS)
@pytest.mark.parametrize("value", ["/run/secrets/missing", "missing.txt"])
def test_a_secret_files_path_is_shown_when_the_file_does_not_exist(option, value):
    words = _unreadable_secret_words(option, value)
    assert option in words
    assert f"the file {value} does not exist" in words


def test_a_bare_name_in_a_secret_option_is_not_shown_by_config_show():
    from calico_dcos.options import redacted

    options = load_options(None, {"CALICO_SERVICE_API_TOKEN_FILE": "hunter2"})
    assert redacted(options)["service"]["api_token_file"] == "***"
    options = load_options(None, {"CALICO_SERVICE_API_TOKEN_FILE": "./hunter2"})
    assert redacted(options)["service"]["api_token_file"] == "./hunter2"


def test_a_json_web_token_given_as_a_secret_file_is_refused_unshown():
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJ1aWQiOiJjYWxpY28ifQ.c2lnbmF0dXJl"
    assert option_rules.looks_like_a_secret(jwt)
    error = refused({"CALICO_SERVICE_API_TOKEN_FILE": jwt})
    assert jwt not in "\n".join(error.lines())
