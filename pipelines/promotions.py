"""Moving the ``champion`` alias by hand (promote, rollback), with the same audit trail as the train flow."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime

from models import registry
from pipelines.settings import Settings


def append_audit(settings: Settings, audit: dict) -> None:
    """Every promotion decision (automatic or by hand) as one JSON line in ``mlruns/promotions.jsonl``."""
    settings.mlruns.mkdir(parents=True, exist_ok=True)
    with (settings.mlruns / "promotions.jsonl").open("a") as handle:
        handle.write(json.dumps(audit, default=str) + "\n")


def move_champion(
    settings: Settings, model_name: str, version: str, action: str, reason: str, force: bool = False
) -> dict:
    """Point ``champion`` at ``version`` because a human said so; record who, when, from which version, and why.

    A version whose sanity checks failed when it was trained (features missing from its hold-out, badly
    calibrated probabilities) is refused unless ``force``; the audit then records the problems overruled."""
    registry.connect(settings.tracking_uri, settings.experiment, settings.artifact_location)
    registry.check_version(model_name, version)
    previous = registry.champion_version(model_name)
    if previous is not None and str(previous) == str(version):
        raise registry.RegistryError(
            f"v{version} is already the champion of '{model_name}': nothing to move; fix: name another version"
        )
    problems = list(registry.promotion_record(model_name, version).get("sanity_problems") or [])
    if problems and action == "promote" and not force:
        raise registry.RegistryError(
            f"v{version} of '{model_name}' failed its sanity checks when it was trained ({'; '.join(problems)}), "
            "so the train flow refused it; fix: train again on data that gives it every feature, or promote "
            "with --force if you accept these problems (the audit records them)"
        )
    audit: dict[str, object] = {
        "at": datetime.now(UTC).isoformat(),
        "by": f"{getpass.getuser()} (wearcast {action})",
        "action": action,
        "model_name": model_name,
        "challenger_version": version,
        "champion_version": previous,
        "promoted": True,
        "reason": reason,
        "rollback_to": previous,
    }
    if problems:  # the training's findings stay on the version: a later promotion needs --force again
        audit["sanity_problems"] = problems
        if action == "promote":
            audit["overruled_sanity_problems"] = problems
    if action == "rollback":  # the restored version rolls back, in turn, to the one it had replaced
        audit["rollback_to"] = _rollback_to(registry.promotion_record(model_name, version))
    registry.set_champion(model_name, version, audit)
    append_audit(settings, audit)
    return audit


def _rollback_to(record: dict) -> str | None:
    """Where a champion with this promotion record rolls back to: the champion it replaced, or, for one that a
    rollback restored, the one it had replaced when first promoted (so rollbacks walk back, v3 -> v2 -> v1)."""
    return record.get("rollback_to", record.get("champion_version"))


def rollback_target(settings: Settings, model_name: str) -> str:
    """The version that was champion before the current one (from the current champion's audit record).

    A version deleted from the registry since is skipped, back to the champion it had replaced (from the audit
    trail in ``mlruns/promotions.jsonl``, since the registry forgets a deleted version's record); when the
    champion itself was deleted (which removes the alias), rollback restores the one it had replaced."""
    registry.connect(settings.tracking_uri, settings.experiment, settings.artifact_location)
    current = registry.champion_version(model_name)
    trail = _audit_trail(settings, model_name)
    gone: list[str] = []
    if current is None:
        last = next((r for r in reversed(trail) if r.get("promoted")), None)
        deleted = None if last is None else str(last.get("challenger_version"))
        if deleted is None or registry.version_exists(model_name, deleted):
            raise registry.RegistryError(
                f"model '{model_name}' has no champion to roll back; fix: `wearcast promote VERSION` to set one"
            )
        gone.append(deleted)
        before = _rollback_to(last or {})
    else:
        before = _rollback_to(registry.promotion_record(model_name, current))
    while before and not registry.version_exists(model_name, before):
        if str(before) in gone:  # deleted champions that had replaced each other (v1 -> v2 -> v1 ...)
            raise registry.RegistryError(
                f"the champions before v{current if current is not None else gone[0]} of '{model_name}' were "
                f"deleted from the registry (v{', v'.join(gone)}): there is nothing to roll back to; fix: "
                "`wearcast promote VERSION` to choose a version by hand"
            )
        gone.append(str(before))
        record: dict = next(
            (
                r
                for r in reversed(trail)
                if r.get("promoted") and str(r.get("challenger_version")) == str(before)
            ),
            {},
        )
        before = _rollback_to(record)
    verb = "was" if len(gone) == 1 else "were"
    deleted_note = f" (v{', v'.join(gone)} {verb} deleted from the registry)" if gone else ""
    if not before:
        start = f"champion v{current}" if current is not None else f"the deleted champion v{gone[0]}"
        raise registry.RegistryError(
            f"{start} of '{model_name}' was the first champion{deleted_note}: there is nothing to roll back to; "
            "fix: `wearcast promote VERSION` to choose a version by hand"
        )
    return str(before)


def _audit_trail(settings: Settings, model_name: str) -> list[dict]:
    """Every promotion decision recorded for ``model_name`` in ``mlruns/promotions.jsonl``, oldest first (a line
    that cannot be read is skipped: the trail is a record, not a source of truth)."""
    path = settings.mlruns / "promotions.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("model_name") == model_name:
            records.append(record)
    return records
