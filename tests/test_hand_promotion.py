"""Promotion and rollback by hand on a real (SQLite) MLflow registry: rollbacks walk back through the champions."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from models.registry import RegistryError
from pipelines.promotions import move_champion, rollback_target
from pipelines.settings import load_settings


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    settings = load_settings()
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    client.create_registered_model("m")
    for _ in range(3):
        client.create_model_version("m", source=(tmp_path / "model").as_uri())
    return settings


def champion(settings) -> str:
    return str(
        MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
        .get_model_version_by_alias("m", "champion")
        .version
    )


def test_rollbacks_walk_back_through_the_champions(settings):
    for version in ("1", "2", "3"):
        move_champion(settings, "m", version, "promote", "next")
    for expected in ("2", "1"):
        move_champion(settings, "m", rollback_target(settings, "m"), "rollback", "worse")
        assert champion(settings) == expected
    with pytest.raises(RegistryError, match="first champion"):
        rollback_target(settings, "m")


def test_rollback_skips_versions_deleted_from_the_registry_and_survives_a_deleted_champion(settings):
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    client.create_model_version("m", source="file:///nowhere")  # v4
    for version in ("1", "2", "3", "4"):
        move_champion(settings, "m", version, "promote", "next")
    client.delete_model_version("m", "3")  # the version the champion replaced is gone: back to v2
    assert rollback_target(settings, "m") == "2"
    client.delete_model_version("m", "4")  # the champion itself is gone, and with it the alias
    assert rollback_target(settings, "m") == "2"
    move_champion(settings, "m", "2", "rollback", "v4 deleted")
    assert champion(settings) == "2"
    assert rollback_target(settings, "m") == "1"
    client.delete_model_version("m", "1")
    with pytest.raises(RegistryError, match=r"first champion \(v1 was deleted"):
        rollback_target(settings, "m")


def test_rollback_through_deleted_champions_that_replaced_each_other_stops_with_the_fix(settings):
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    for version in ("1", "2", "1", "3"):  # v1 promoted again by hand after v2
        move_champion(settings, "m", version, "promote", "next")
    client.delete_model_version("m", "1")
    client.delete_model_version("m", "2")
    with pytest.raises(RegistryError, match=r"were deleted from the registry .*fix: `wearcast promote"):
        rollback_target(settings, "m")


def test_promoting_the_champion_again_is_refused(settings):
    move_champion(settings, "m", "2", "promote", "first")
    with pytest.raises(RegistryError, match="already the champion"):
        move_champion(settings, "m", "2", "promote", "again")


def test_a_champion_whose_files_are_gone_names_where_they_were_and_the_fix(settings, tmp_path):
    from models.registry import connect, load_model

    move_champion(settings, "m", "1", "promote", "first")
    connect(settings.tracking_uri, settings.experiment, settings.artifact_location)
    with pytest.raises(RegistryError, match=r"version 1 cannot be loaded from .*model.*fix: restore them"):
        load_model("m")


def test_a_version_that_failed_its_sanity_checks_needs_force_and_the_audit_names_what_was_overruled(
    settings,
):
    refused = {"promoted": False, "sanity_problems": ["calibration error 0.210 on the hold-out exceeds 0.1"]}
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    client.set_model_version_tag("m", "2", "promotion", json.dumps(refused))
    move_champion(settings, "m", "1", "promote", "first")
    with pytest.raises(
        RegistryError, match=r"v2 .* failed its sanity checks .*calibration error 0.210.*--force"
    ):
        move_champion(settings, "m", "2", "promote", "looks fine to me")
    assert champion(settings) == "1"
    audit = move_champion(settings, "m", "2", "promote", "accepted", force=True)
    assert champion(settings) == "2"
    assert audit["overruled_sanity_problems"] == refused["sanity_problems"]
    move_champion(settings, "m", "3", "promote", "next")  # no record of problems: no force needed
    with pytest.raises(RegistryError, match="--force"):  # forced once is not forced for ever
        move_champion(settings, "m", "2", "promote", "again")
