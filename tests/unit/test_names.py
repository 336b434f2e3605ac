"""names.py: DNS-valid child names with hash truncation, labels and selectors."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vulcan_operator import names

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

CHILD_NAMES: list[Callable[[str], str]] = [
    names.engine_deployment,
    names.engine_service,
    names.engine_service_account,
    names.engine_hpa,
    names.engine_pdb,
    names.engine_network_policy,
    names.engine_ingress,
    names.engine_config,
    names.engine_keys_secret,
    names.backup_cronjob,
    names.maintenance_cronjob,
    names.backup_pvc,
]


def is_dns_label(name: str) -> bool:
    return len(name) <= 63 and DNS_LABEL.fullmatch(name) is not None


# --- dns_name -------------------------------------------------------------------------------


def test_short_valid_names_are_kept_as_they_are() -> None:
    assert names.dns_name("prod") == "prod"
    assert names.dns_name("prod", "config") == "prod-config"
    assert names.dns_name("a--b") == "a--b"


def test_a_63_character_name_is_not_touched_but_64_is() -> None:
    exact = "a" * 63
    assert names.dns_name(exact) == exact
    longer = names.dns_name("a" * 64)
    assert len(longer) == 63
    assert longer != exact


def test_long_names_are_truncated_with_a_hash_and_keep_their_suffix() -> None:
    engine = "plant-scheduling-" + "x" * 80
    name = names.dns_name(engine, "config")
    assert len(name) <= 63
    assert is_dns_label(name)
    assert name.endswith("-config")
    assert name.startswith("plant-scheduling-")
    digest = names.short_hash(f"{engine}-config")
    assert re.fullmatch(r"[0-9a-f]{8}", digest)
    assert f"-{digest}-config" in name


def test_truncation_is_stable_across_calls() -> None:
    engine = "e" * 100
    assert names.dns_name(engine, "keys") == names.dns_name(engine, "keys")
    assert names.engine_deployment(engine) == names.engine_deployment(engine)


def test_two_long_names_sharing_a_long_prefix_stay_distinct() -> None:
    prefix = "factory-north-scheduling-engine-production-" + "z" * 40
    first, second = names.dns_name(prefix + "-one"), names.dns_name(prefix + "-two")
    assert first != second
    assert len(first) == len(second) == 63
    assert is_dns_label(first) and is_dns_label(second)
    # ... and likewise with a suffix part kept at the end.
    assert names.engine_config(prefix + "a") != names.engine_config(prefix + "b")


def test_invalid_characters_are_replaced_and_hashed_so_names_cannot_collide() -> None:
    dotted = names.dns_name("prod.v2")
    dashed = names.dns_name("prod-v2")
    assert dashed == "prod-v2"
    assert dotted != dashed
    assert dotted.startswith("prod-v2-")
    assert is_dns_label(dotted)
    assert is_dns_label(names.dns_name("Prod_Engine"))
    assert names.dns_name("Prod") != names.dns_name("prod")


def test_subdomain_length_is_allowed_when_asked_for() -> None:
    long = "a" * 200
    assert names.dns_name(long, max_length=253) == long
    assert len(names.dns_name("a" * 300, max_length=253)) == 253


def test_impossible_lengths_are_refused() -> None:
    with pytest.raises(ValueError):
        names.dns_name("x", max_length=8)
    with pytest.raises(ValueError):
        names.dns_name("x", max_length=254)


def test_a_name_made_only_of_invalid_characters_becomes_its_hash() -> None:
    name = names.dns_name("...")
    assert is_dns_label(name)
    assert name == names.short_hash("...")


def test_service_names_start_with_a_letter() -> None:
    assert names.engine_service("prod") == "prod"
    assert names.engine_service("1prod") == "ve-1prod"
    assert DNS_1035.fullmatch(names.engine_service("9" * 80))


def test_label_values_are_valid_and_hashed_when_too_long() -> None:
    assert names.label_value("prod.v2") == "prod.v2"
    long = "a." * 40
    value = names.label_value(long)
    assert len(value) <= 63
    assert LABEL_VALUE.fullmatch(value)
    assert value != names.label_value(long + "b")


def test_default_database_secret_follows_the_convention() -> None:
    assert names.default_database_secret("prod") == "prod-database"
    assert names.default_database_secret("plant.a") == "plant.a-database"
    assert len(names.default_database_secret("a" * 250)) <= 253


def test_child_names_of_the_same_kind_differ() -> None:
    # ConfigMap and Secret live in the same namespace as other ConfigMaps/Secrets of ours.
    assert names.engine_config("prod") != names.engine_keys_secret("prod")
    assert names.engine_keys_secret("prod") != names.default_database_secret("prod")


# --- labels -------------------------------------------------------------------------------


def test_labels_are_ours_only() -> None:
    labels = names.labels("prod", names.COMPONENT_BACKEND)
    assert labels == {
        "app.kubernetes.io/name": "vulcan-engine",
        "app.kubernetes.io/part-of": "vulcan-engine",
        "app.kubernetes.io/managed-by": "vulcan-operator",
        "app.kubernetes.io/component": "backend",
        "vulcan-engine.com/engine": "prod",
    }
    assert "app.kubernetes.io/instance" not in labels


def test_selector_is_a_stable_subset_of_the_labels() -> None:
    selector = names.selector("prod", "backend")
    labels = names.labels("prod", "backend")
    assert selector.items() <= labels.items()
    assert not any("version" in key for key in selector)
    assert selector == names.selector("prod", "backend")


def test_annotation_keys() -> None:
    assert names.ANNOTATION_SPEC_HASH == "vulcan-engine.com/spec-hash"
    assert names.ANNOTATION_CONFIG_HASH == "vulcan-engine.com/config-hash"
    assert names.ANNOTATION_ROTATE_SECRETS == "vulcan-engine.com/rotate-secrets"


# --- properties ---------------------------------------------------------------------------

dns_labels = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
dns_subdomains = (
    st.lists(dns_labels, min_size=1, max_size=6).map(".".join).filter(lambda s: len(s) <= 253)
)


@settings(max_examples=300, deadline=None)
@given(engine=dns_subdomains)
def test_any_valid_engine_name_gives_valid_child_names(engine: str) -> None:
    for child in CHILD_NAMES:
        name = child(engine)
        assert is_dns_label(name), (child.__name__, engine, name)
    assert DNS_1035.fullmatch(names.engine_service(engine))
    for value in names.labels(engine, names.COMPONENT_BACKEND).values():
        assert len(value) <= 63 and LABEL_VALUE.fullmatch(value)
    secret = names.default_database_secret(engine)
    assert len(secret) <= 253


@settings(max_examples=300, deadline=None)
@given(first=dns_subdomains, second=dns_subdomains)
def test_different_engines_get_different_child_names(first: str, second: str) -> None:
    if first == second:
        return
    for child in CHILD_NAMES:
        assert child(first) != child(second), (child.__name__, first, second)
    assert names.selector(first, "backend") != names.selector(second, "backend")


# --- an engine's backups, maintenance and restores ------------------------------------------


def test_backup_children_names() -> None:
    assert names.backup_cronjob("prod") == "prod-backup"
    assert names.maintenance_cronjob("prod") == "prod-maintenance"
    assert names.backup_pvc("prod") == "prod-backups"
    assert names.backup_job("prod-before-2-1-0", "0123abcd") == "prod-before-2-1-0-backup-0123abcd"
    assert names.restore_job("prod-restore", "0123abcd") == "prod-restore-restore-0123abcd"
    long = "e" * 60
    for cronjob in (names.backup_cronjob(long), names.maintenance_cronjob(long)):
        # The CronJob controller appends 11 characters: its Jobs' names must stay DNS labels.
        assert len(cronjob) <= names.CRONJOB_NAME_MAX and is_dns_label(cronjob + "-1234567890")
    assert names.backup_cronjob(long) != names.maintenance_cronjob(long)
    assert is_dns_label(names.backup_job("b" * 200, "0123abcd"))
    assert names.backup_job("b" * 200, "0123abcd").endswith("-0123abcd")  # the digest stays
