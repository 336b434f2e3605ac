"""templating.py and config.py: strict templates, JSON-quoted scalars, where templates come from."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pytest

from vulcan_operator import config, templating
from vulcan_operator.config import Settings

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
TOJSON_LAST = re.compile(r"\|\s*tojson(\([^|]*\))?$")

HOSTILE = [
    "yes",
    "no",
    "on",
    "off",
    "y",
    "true",
    "null",
    "~",
    "1e3",
    "0x1F",
    "012",
    "1_000",
    "12:30",
    ": ",
    "a: b",
    "- item",
    "#comment",
    "&anchor",
    "*alias",
    "!tag",
    "%directive",
    "@at",
    "`tick`",
    "{flow: map}",
    "[flow, seq]",
    "'single'",
    '"double"',
    "back\\slash",
    "line one\nline two",
    "tab\there",
    "  padded  ",
    "",
    "---",
    "...",
    "ünïcødé ✓",
    "\u2028separator",
    "{{ not a template }}",
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "value.yaml.j2").write_text("value: {{ value|tojson }}\n")
    (tmp_path / "missing.yaml.j2").write_text("a: {{ present|tojson }}\nb: {{ absent|tojson }}\n")
    (tmp_path / "stream.yaml.j2").write_text(
        "---\n# nothing here\n---\nkind: A\n---\n\n---\nkind: B\n"
    )
    (tmp_path / "scalar.yaml.j2").write_text("just a string\n")
    (tmp_path / "mapping.yaml.j2").write_text("labels: {{ labels|tojson }}\n")
    return tmp_path


def test_a_missing_variable_fails(folder: Path) -> None:
    with pytest.raises(jinja2.UndefinedError, match="absent"):
        templating.render("missing.yaml.j2", folder=folder, present=1)


def test_a_missing_variable_fails_in_a_real_template() -> None:
    with pytest.raises(jinja2.UndefinedError):
        templating.render("serviceaccount.yaml.j2")


def test_an_attribute_of_a_missing_variable_fails_too(folder: Path) -> None:
    (folder / "attr.yaml.j2").write_text("a: {{ probe.period|tojson }}\n")
    with pytest.raises(jinja2.UndefinedError):
        templating.render("attr.yaml.j2", folder=folder, probe={})


@pytest.mark.parametrize("value", HOSTILE)
def test_tojson_keeps_yaml_hostile_strings_as_strings(folder: Path, value: str) -> None:
    (doc,) = templating.render("value.yaml.j2", folder=folder, value=value)
    assert doc == {"value": value}


@pytest.mark.parametrize(
    "value", [0, 1, -7, 8000, 1.5, 1e30, -2.5e-12, 3.0, True, False, None, [1, "on"]]
)
def test_tojson_keeps_other_types(folder: Path, value: object) -> None:
    (doc,) = templating.render("value.yaml.j2", folder=folder, value=value)
    assert doc == {"value": value}
    assert type(doc["value"]) is type(value)


def test_tojson_renders_mappings_as_flow_yaml(folder: Path) -> None:
    labels = {"app.kubernetes.io/name": "vulcan-engine", "on": "yes", "x": "a: b"}
    (doc,) = templating.render("mapping.yaml.j2", folder=folder, labels=labels)
    assert doc == {"labels": labels}


def test_tojson_refuses_what_json_cannot_say() -> None:
    with pytest.raises(ValueError):
        templating.tojson(float("nan"))
    with pytest.raises(TypeError):
        templating.tojson(object())


def test_multi_document_streams_drop_empty_documents(folder: Path) -> None:
    assert templating.render("stream.yaml.j2", folder=folder) == [{"kind": "A"}, {"kind": "B"}]


def test_a_document_that_is_not_a_mapping_is_an_error(folder: Path) -> None:
    with pytest.raises(ValueError, match="not a mapping"):
        templating.render("scalar.yaml.j2", folder=folder)


def test_values_are_not_html_escaped(folder: Path) -> None:
    text = templating.render_text("value.yaml.j2", folder=folder, value="<a & b>")
    assert "<a & b>" in text


# --- where templates come from ---------------------------------------------------------


def test_templates_dir_defaults_to_a_folder_holding_the_templates() -> None:
    folder = config.templates_dir({})
    assert (folder / "deployment.yaml.j2").is_file()
    assert folder.resolve() == TEMPLATES.resolve() or folder.name == "templates"


def test_templates_dir_can_be_overridden(tmp_path: Path) -> None:
    assert config.templates_dir({config.ENV_TEMPLATES_DIR: str(tmp_path)}) == tmp_path


def test_render_uses_the_configured_folder_by_default() -> None:
    (doc,) = templating.render("serviceaccount.yaml.j2", name="x")
    assert doc["metadata"]["name"] == "x"


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.yaml.j2")))
def test_every_scalar_in_a_template_goes_through_tojson(template: str) -> None:
    text = (TEMPLATES / template).read_text()
    for inner in re.findall(r"\{\{(.*?)\}\}", text, flags=re.DOTALL):
        expression = inner.strip("-+ \n")
        assert TOJSON_LAST.search(expression), f"{template}: {{{{{inner}}}}}"


# --- settings ---------------------------------------------------------------------------


def test_settings_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.resync_seconds == 60
    assert settings.postgres_image == "postgres:15-alpine"
    version = config.package_version()
    assert settings.operator_image == f"ghcr.io/vulcan-engine/vulcan-operator:{version}"
    assert settings.namespaces == ()
    assert settings.clusterwide


def test_settings_from_env() -> None:
    settings = Settings.from_env(
        {
            config.ENV_OPERATOR_IMAGE: "registry.example.com/vulcan-operator:1.2.3",
            config.ENV_RESYNC_SECONDS: "30",
            config.ENV_NAMESPACES: "vulcan, plant-a,,",
            config.ENV_POSTGRES_IMAGE: "postgres:16-alpine",
        }
    )
    assert settings == Settings(
        operator_image="registry.example.com/vulcan-operator:1.2.3",
        resync_seconds=30,
        namespaces=("vulcan", "plant-a"),
        postgres_image="postgres:16-alpine",
    )
    assert not settings.clusterwide


@pytest.mark.parametrize("raw", ["soon", "0", "-5"])
def test_bad_resync_interval_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match=config.ENV_RESYNC_SECONDS):
        Settings.from_env({config.ENV_RESYNC_SECONDS: raw})


def test_poll_interval_takes_fractions() -> None:
    assert Settings.from_env({config.ENV_POLL_SECONDS: "0.25"}).poll_seconds == 0.25
    assert Settings.from_env({}).poll_seconds == 5


@pytest.mark.parametrize("raw", ["soon", "0", "0.05", "-1", "nan"])
def test_bad_poll_interval_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match=config.ENV_POLL_SECONDS):
        Settings.from_env({config.ENV_POLL_SECONDS: raw})


def test_render_one_wants_exactly_one_document(folder: Path) -> None:
    assert templating.render_one("value.yaml.j2", folder=folder, value=1) == {"value": 1}
    with pytest.raises(ValueError, match="rendered 2 documents, expected 1"):
        templating.render_one("stream.yaml.j2", folder=folder)
