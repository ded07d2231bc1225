"""The config file: validation errors name the key path and line; env overrides; the
example configs validate; `actorq config check` exit codes."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import msgspec
import pytest

import actorq
from actorq import ConfigError
from actorq.cli.main import RET_CONFIG, RET_OK
from actorq.config.example import EXAMPLE_CONFIG
from actorq.config.locate import key_lines, locate, parse_path
from actorq.config.schema import Config, load_config, loads_config
from actorq.exceptions import ConfigFileError
from tests.helpers import paths

ROOT = paths.ROOT

GOOD = textwrap.dedent(
    """\
    namespace = "shop"

    [nats]
    url = "nats://127.0.0.1:4222"

    [[queues]]
    name = "emails"
    processes = 2

    [[queues]]
    name = "reports"
    concurrency = 4
    """
)


def _error(text: str, **kwargs: object) -> ConfigFileError:
    with pytest.raises(ConfigFileError) as info:
        loads_config(textwrap.dedent(text), source="app.toml", **kwargs)  # type: ignore[arg-type]
    return info.value


# -- the locator -------------------------------------------------------------------------


def test_parse_path_reads_msgspec_paths() -> None:
    assert parse_path("$.queues[1].concurency") == ("queues", 1, "concurency")
    assert parse_path("$") == ()
    assert parse_path("$['odd key'][0]") == ("odd key", 0)


def test_locator_finds_keys_in_tables_and_arrays_of_tables() -> None:
    text = textwrap.dedent(
        """\
        # comment
        namespace = "x"
        imports = [
            "a",   # a [bracket] in a comment
            "b",
        ]
        note = '''
        name = "not a key"
        '''
        [nats]
        url = "nats://h:1"
        [[queues]]
        name = "a"
        [[queues]]
        name = "b"
        backoff = { kind = "fixed", base = 2.0 }
        [queues.extra]
        deep = 1
        "quoted key" = 2
        dotted.key = 3
        """
    )
    lines = key_lines(text)
    assert lines[("namespace",)] == 2
    assert lines[("imports",)] == 3
    assert ("name",) not in lines  # inside a multi-line string
    assert lines[("nats", "url")] == 11
    assert lines[("queues", 0)] == 12
    assert lines[("queues", 1, "name")] == 15
    assert lines[("queues", 1, "backoff")] == 16
    assert lines[("queues", 1, "extra", "deep")] == 18
    assert lines[("queues", 1, "extra", "quoted key")] == 19
    assert lines[("queues", 1, "extra", "dotted", "key")] == 20
    # A path into a value falls back to the key holding it.
    assert locate(text, "$.imports[1]") == 3
    assert locate(text, "$.queues[1].backoff.base") == 16
    assert locate(text, "$.logging.level") is None


# -- one test per class of error ---------------------------------------------------------


def test_an_unknown_key_is_refused_with_its_path_and_line() -> None:
    err = _error(GOOD + "concurency = 3\n")
    assert err.key == "queues[1].concurency"
    assert err.line == 13
    assert str(err).startswith("app.toml:13: queues[1].concurency: unknown key")
    assert "concurrency" in str(err)  # the valid keys are listed


@pytest.mark.parametrize(
    ("added", "key"), [('sys_paht = ["x"]\n', "sys_paht"), ("[natz]\n", "natz")]
)
def test_an_unknown_top_level_key_gets_its_line_and_the_valid_keys(added: str, key: str) -> None:
    err = _error(added + GOOD)
    assert (err.key, err.line) == (key, 1)
    assert "unknown key; valid keys here:" in str(err)
    assert "sys_path" in str(err)
    assert "nats" in str(err)


def test_a_value_outside_a_fixed_set_lists_the_valid_values() -> None:
    err = _error(GOOD + '\n[logging]\nlevel = "info"\n')
    assert err.key == "logging.level"
    assert "valid values: 'DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'" in str(err)


@pytest.mark.parametrize(
    ("added", "key", "says"),
    [
        ('\n[tracing]\nsetup = "nocolon"\n', "tracing.setup",
         'expected "package.module:name", e.g. "myapp.telemetry:setup"'),
        ('\n[[actors]]\nname = "a"\nclass = "Greeter"\n', "actors[0].class",
         'expected "package.module:name", e.g. "myapp.actors:Greeter"'),
        ('\n[[queues]]\nname = "two words"\n', "queues[2].name",
         "expected a name of letters, digits, '_' and '-' (at most 64)"),
    ],
)  # fmt: skip
def test_a_value_of_the_wrong_shape_says_the_shape_not_a_regex(
    added: str, key: str, says: str
) -> None:
    err = _error(GOOD + added, check_imports=False)
    assert err.key == key
    assert str(err).endswith(says)
    assert "regex" not in str(err)


def test_a_tracing_setup_module_that_cannot_be_found_is_refused() -> None:
    err = _error(GOOD + '\n[tracing]\nsetup = "nosuchpkg.telemetry:setup"\n')
    assert err.key == "tracing.setup"
    assert "module 'nosuchpkg.telemetry' cannot be found" in str(err)


def test_a_value_of_the_wrong_type_is_refused_with_its_path_and_line() -> None:
    err = _error(GOOD.replace("processes = 2", 'processes = "two"'))
    assert (err.key, err.line) == ("queues[0].processes", 8)
    assert "expected `int`, got `str`" in str(err)


def test_a_value_out_of_range_is_refused() -> None:
    err = _error("[nats]\nport = 70000\n")
    assert (err.key, err.line) == ("nats.port", 2)


def test_a_missing_required_value_is_refused_at_its_table() -> None:
    err = _error(GOOD.replace('name = "reports"\n', ""))
    assert (err.key, err.line) == ("queues[1]", 10)
    assert "required key `name` is missing" in str(err)


def test_an_actor_class_that_cannot_be_imported_is_refused() -> None:
    text = '[[actors]]\nname = "a"\nclass = "json:NoSuchClass"\n'
    err = _error(text)
    assert (err.key, err.line) == ("actors[0].class", 3)
    assert "has no attribute 'NoSuchClass'" in str(err)
    err = _error(text.replace("json:NoSuchClass", "no_such_pkg.mod:Actor"))
    assert "cannot import 'no_such_pkg.mod'" in str(err)


def test_an_import_that_cannot_be_found_is_refused() -> None:
    err = _error('imports = ["json", "no_such_module_here"]\n')
    assert (err.key, err.line) == ("imports[1]", 1)


def test_a_second_queue_with_the_same_name_is_refused() -> None:
    err = _error(GOOD.replace('"reports"', '"emails"'))
    assert (err.key, err.line) == ("queues[1].name", 11)


def test_invalid_toml_is_refused_with_its_line() -> None:
    err = _error('namespace = "x"\n[nats\n')
    assert err.line == 2
    assert "not valid TOML" in str(err)


def test_an_unset_signing_key_variable_is_refused() -> None:
    text = '[security]\nsigning_key_env = "MY_KEY"\n'
    err = _error(text, environ={})
    assert (err.key, err.line) == ("security.signing_key_env", 2)
    assert "MY_KEY is not set" in str(err)
    assert "not hex" in str(_error(text, environ={"MY_KEY": "zz"}))
    env = {"MY_KEY": "ab" * 32}
    signer = loads_config(text, environ=env).signer(env)
    assert signer is not None
    signer.verify(b"x", signer.sign(b"x"))  # raises when wrong
    rotating = text + 'previous_signing_keys_env = "OLD_KEYS"\n'
    err = _error(rotating, environ={**env, "OLD_KEYS": "cd" * 32 + ",zz"})
    assert (err.key, err.line) == ("security.previous_signing_keys_env", 3)
    env["OLD_KEYS"] = "cd" * 32 + "," + "ef" * 32
    old = actorq.Signer(b"\xcd" * 32)
    signer = loads_config(rotating, environ=env).signer(env)
    assert signer is not None
    signer.verify(b"x", old.sign(b"x"))


def test_accepting_no_codec_at_all_is_refused() -> None:
    err = _error("[security]\ncodecs = []\n")
    assert (err.key, err.line) == ("security.codecs", 2)


def test_a_config_error_is_an_actorq_config_error() -> None:
    assert issubclass(ConfigFileError, ConfigError)


# -- environment overrides ---------------------------------------------------------------


def test_environment_variables_override_keys() -> None:
    env = {
        "ACTORQ_NAMESPACE": "other",
        "ACTORQ_NATS_URL": "nats://a:4222, nats://b:4222",
        "ACTORQ_LOGGING_LEVEL": "DEBUG",
        "ACTORQ_LOGGING_FORMAT": "json",
        "ACTORQ_QUEUES_1_CONCURRENCY": "32",
        "ACTORQ_QUEUES_0_BACKOFF_BASE": "0.5",
        "ACTORQ_RESULTS_TTL": "60",
        "ACTORQ_SCHEDULER_ENABLED": "false",
        "ACTORQ_IMPORTS": "json",
        # Not config keys: ignored.
        "ACTORQ_NATS_SERVER": "/usr/bin/nats-server",
        "ACTORQ_SIGNING_KEY": "00",
    }
    config = loads_config(GOOD, environ=env)
    assert config.namespace == "other"
    assert config.nats.urls == ["nats://a:4222", "nats://b:4222"]
    assert (config.logging.level, config.logging.format) == ("DEBUG", "json")
    assert config.queues[1].concurrency == 32
    assert config.queues[0].backoff.base == 0.5
    assert config.results.ttl == 60.0
    assert config.scheduler.enabled is False
    assert config.imports == ["json"]


def test_an_empty_variable_clears_a_key_so_the_server_is_embedded() -> None:
    config = loads_config(GOOD, environ={"ACTORQ_NATS_URL": "", "ACTORQ_NATS_PORT": "0"})
    assert config.nats.embedded
    assert config.nats.port == 0


def test_a_bad_override_names_the_variable() -> None:
    err = _error(GOOD, environ={"ACTORQ_NATS_PORT": "lots"})
    assert err.source == "environment variable ACTORQ_NATS_PORT"
    assert err.key == "nats.port"
    err = _error(GOOD, environ={"ACTORQ_QUEUES_5_CONCURRENCY": "3"})
    assert "has no such element" in str(err)


def test_the_file_is_strict_even_where_an_override_would_be_lax() -> None:
    # "4222" from the environment is a port; in the file it is a string, refused.
    err = _error('[nats]\nport = "4222"\n', environ={})
    assert err.key == "nats.port"


# -- the examples ------------------------------------------------------------------------


def _keys(struct: type[msgspec.Struct]) -> set[str]:
    return {f.encode_name for f in msgspec.structs.fields(struct)}


def test_the_printed_example_validates_and_names_every_key() -> None:
    config = loads_config(EXAMPLE_CONFIG, environ={})
    assert config == Config()
    sections = {f.encode_name: f.type for f in msgspec.structs.fields(Config)}
    for name, tp in sections.items():
        assert f"\n{name} =" in EXAMPLE_CONFIG or f"[{name}]" in EXAMPLE_CONFIG, name
        inner = getattr(tp, "__args__", (tp,))[0] if name in ("queues", "actors") else tp
        if isinstance(inner, type) and issubclass(inner, msgspec.Struct):
            for key in _keys(inner):
                assert f"{key} =" in EXAMPLE_CONFIG, f"{name}.{key} missing from the example"


def test_examples_config_toml_validates() -> None:
    config = load_config(ROOT / "examples" / "config.toml", environ={})
    assert config.nats.embedded
    assert [q.name for q in config.queues] == ["default"]


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorq", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_config_example_prints_a_file_that_config_check_accepts(tmp_path: Path) -> None:
    printed = _cli("config", "example")
    assert printed.returncode == RET_OK
    assert printed.stdout == EXAMPLE_CONFIG
    path = tmp_path / "actorq.toml"
    path.write_text(printed.stdout)
    checked = _cli("config", "check", str(path))
    assert checked.returncode == RET_OK, checked.stderr
    assert "ok" in checked.stdout


def test_config_check_exits_with_ret_config_and_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(GOOD + "concurency = 3\n")
    checked = _cli("config", "check", str(path))
    assert checked.returncode == RET_CONFIG
    assert f"{path}:13: queues[1].concurency: unknown key" in checked.stderr


def _env_names(struct: type[msgspec.Struct], prefix: str = "ACTORQ") -> list[str]:
    names = []
    for field in msgspec.structs.fields(struct):
        name = f"{prefix}_{field.encode_name.upper()}"
        inner = field.type
        if getattr(inner, "__origin__", None) is list and issubclass(
            inner.__args__[0], msgspec.Struct
        ):
            inner, name = inner.__args__[0], f"{name}_<i>"
        if isinstance(inner, type) and issubclass(inner, msgspec.Struct):
            names += _env_names(inner, name) if inner is not actorq.RetryBackoff else [name]
        else:
            names.append(name)
    return names


def test_docs_configuration_lists_every_key_with_its_env_var() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    names = _env_names(Config)
    assert "ACTORQ_NATS_TLS_HOSTNAME" in names
    assert "ACTORQ_QUEUES_<i>_ACK_WAIT" in names
    for name in names:
        assert f"`{name}`" in doc or f"`{name}_" in doc, name
    for field in msgspec.structs.fields(actorq.RetryBackoff):
        assert f"_BACKOFF_{field.name.upper()}`" in doc


@pytest.mark.parametrize("doc", ["configuration.md", "deployment.md", "security.md"])
def test_every_toml_snippet_in_the_docs_validates(doc: str) -> None:
    text = (ROOT / "docs" / doc).read_text()
    snippets = re.findall(r"```toml\n(.*?)```", text, flags=re.DOTALL)
    assert snippets
    env = {"ACTORQ_SIGNING_KEY": "ab" * 32, "ACTORQ_PREVIOUS_SIGNING_KEYS": "cd" * 32}
    for snippet in snippets:
        loads_config(snippet, source=doc, environ=env, check_imports=False)
