"""Evidence packs: what is in them, the offline verifier (function and CLI), and that tampering with
any file, an audit entry, or the stored log is detected."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.audit import AuditEntry
from reconciler.evidence import FILES, MANIFEST, build_pack, to_json, verify_pack
from syncwatch.cli import main
from tests.api.story import Story, act, bearer, rules, write_story
from tests.conftest import ADMIN_TOKEN, Harness

ADMIN = bearer(ADMIN_TOKEN)


@pytest.fixture
def story(harness: Harness) -> Story:
    s = write_story(harness.store)
    act(harness.store, s.mismatch, "acknowledged")
    act(harness.store, s.breach, "acknowledged", "assigned")
    act(harness.store, s.mismatch, "resolved")
    return s


def fetch(harness: Harness, fingerprint: str) -> bytes:
    response = harness.client.get(f"/api/v1/findings/{fingerprint}/evidence", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    return response.content


def unzip(pack: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(pack)) as z:
        return {name: z.read(name) for name in z.namelist()}


def rezip(files: dict[str, bytes], *, rehash: bool = False) -> bytes:
    """The files zipped again; `rehash` rewrites the manifest's hashes to match (a careful forger)."""
    if rehash:
        manifest = json.loads(files[MANIFEST])
        listed = {k: v.decode() for k, v in files.items() if k != MANIFEST}
        return build_pack(listed, {k: v for k, v in manifest.items() if k not in ("files", "format", "seal")})[0]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buffer.getvalue()


def test_the_pack_holds_everything_and_verifies(harness: Harness, story: Story) -> None:
    files = unzip(fetch(harness, story.mismatch))
    assert set(files) == {MANIFEST, *FILES}
    manifest = json.loads(files[MANIFEST])
    assert manifest["finding"] == story.mismatch and manifest["created_by"] == {"name": "bootstrap", "role": "admin"}
    finding = json.loads(files["finding.json"])
    assert finding["rule"] == "crm_vs_erp_contract_value" and finding["impact_amount"] == "1000.00"
    events = json.loads(files["events.json"])
    assert [e["type"] for e in events] == ["crm.opportunity.won"] and json.loads(events[0]["data"])["amount"] == 1000
    records = json.loads(files["records.json"])
    assert sorted((r["system"], r["key"]) for r in records) == [("crm", "OPP-1"), ("erp", "PRJ-1")]
    # the rule exactly as it ran: its file's text, and the canonical JSON whose hash is the version
    rule = json.loads(files["rule.json"])
    loaded = rules()["crm_vs_erp_contract_value"]
    assert rule["version"] == finding["rule_version"] == loaded.version
    assert files["rule.yaml"].decode() == Path(loaded.path).read_text()
    actions = json.loads(files["actions.json"])
    assert [a["action"] for a in actions] == ["acknowledged", "resolved"] and [a["seq"] for a in actions] == [1, 4]
    chain = json.loads(files["chain.json"])
    assert [e["seq"] for e in chain["entries"]] == [1, 2, 3, 4] and chain["head_seq"] == 4
    report = verify_pack(rezip(files))
    assert report.ok, report.problems
    assert report.head_hash == chain["head_hash"] and len(report.checked) == 3


def test_the_export_is_audited_with_the_manifest_hash(harness: Harness, story: Story) -> None:
    pack = fetch(harness, story.breach)
    entry = harness.app.state.audit.entries()[-1]
    assert (entry.action, entry.finding_fingerprint) == ("evidence_exported", "")
    params = json.loads(entry.parameters)
    assert params["finding"] == story.breach and params["manifest_sha256"] == verify_pack(pack).manifest_sha256
    assert params["head_seq"] == 4  # the pack's proof ends just before its own export entry


def test_a_finding_without_actions_has_an_empty_proof_up_to_the_head(harness: Harness) -> None:
    story = write_story(harness.store)
    act(harness.store, story.breach, "acknowledged")
    files = unzip(fetch(harness, story.mismatch))
    chain = json.loads(files["chain.json"])
    assert chain["entries"] == [] and chain["head_seq"] == 1 and json.loads(files["actions.json"]) == []
    assert verify_pack(rezip(files)).ok


def test_changing_any_file_is_detected(harness: Harness, story: Story) -> None:
    original = unzip(fetch(harness, story.breach))
    for name in [MANIFEST, *FILES]:
        files = dict(original)
        files[name] = files[name].replace(b"a", b"b", 1) if b"a" in files[name] else files[name] + b" "
        report = verify_pack(rezip(files))
        assert not report.ok and report.problems, name


def test_a_removed_or_added_file_is_detected(harness: Harness, story: Story) -> None:
    files = unzip(fetch(harness, story.breach))
    assert not verify_pack(rezip({k: v for k, v in files.items() if k != "spans.json"})).ok
    assert not verify_pack(rezip({**files, "extra.txt": b"hello"})).ok
    assert not verify_pack(b"not a zip").ok


@pytest.mark.parametrize("content", [b"null", b"[]", b"7"])
def test_a_forged_pack_of_wrong_shapes_fails_without_crashing(harness: Harness, story: Story, content: bytes) -> None:
    files = unzip(fetch(harness, story.breach))
    forged = {k: (content if k.endswith(".json") and k != MANIFEST else v) for k, v in files.items()}
    report = verify_pack(rezip(forged, rehash=True))  # hashes and seal correct: only the shapes are wrong
    assert not report.ok and any("not the" in p for p in report.problems), report.problems


def test_a_manifest_nested_past_any_stack_is_not_valid_json() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr(MANIFEST, "[" * 100_000)
    report = verify_pack(buffer.getvalue())
    assert not report.ok and "is not valid JSON" in report.problems[0]


def test_an_altered_entry_is_detected_even_with_a_rewritten_manifest(harness: Harness, story: Story) -> None:
    files = unzip(fetch(harness, story.breach))
    chain = json.loads(files["chain.json"])
    actions = json.loads(files["actions.json"])
    for entries in (chain["entries"], actions):
        for entry in entries:
            if entry["seq"] == 2:
                entry["actor"] = "mallory"
    files["chain.json"], files["actions.json"] = to_json(chain).encode(), to_json(actions).encode()
    report = verify_pack(rezip(files, rehash=True))
    assert not report.ok and any("entry 2" in p and "altered" in p for p in report.problems)


def test_a_forged_entry_with_a_recomputed_hash_breaks_the_link_to_the_head(harness: Harness, story: Story) -> None:
    files = unzip(fetch(harness, story.breach))
    chain = json.loads(files["chain.json"])
    assert [e["seq"] for e in chain["entries"]] == [2, 3, 4]
    forged = AuditEntry(**{**chain["entries"][1], "outcome": "rejected"})
    chain["entries"][1] = {**forged.as_dict(), "hash": forged.expected_hash()}
    actions = [e for e in chain["entries"] if e["finding_fingerprint"] == story.breach]
    files["chain.json"], files["actions.json"] = to_json(chain).encode(), to_json(actions).encode()
    report = verify_pack(rezip(files, rehash=True))
    assert not report.ok and any("entry 4" in p and "prev_hash" in p for p in report.problems)


def test_a_hidden_action_is_detected(harness: Harness, story: Story) -> None:
    files = unzip(fetch(harness, story.breach))
    files["actions.json"] = to_json(json.loads(files["actions.json"])[:1]).encode()
    report = verify_pack(rezip(files, rehash=True))
    assert not report.ok and any("actions.json differs" in p for p in report.problems)


def test_a_swapped_rule_text_is_detected(harness: Harness, story: Story) -> None:
    files = unzip(fetch(harness, story.breach))
    original = files["rule.yaml"]
    files["rule.yaml"] = original.replace(b"within: 42d", b"within: 30d")
    assert files["rule.yaml"] != original, "the swap must change the rule text"
    report = verify_pack(rezip(files, rehash=True))
    assert not report.ok and any("rule.yaml loads to version" in p for p in report.problems)


def test_a_log_tampered_in_the_store_exports_a_pack_that_fails(harness: Harness, story: Story) -> None:
    harness.store.command("ALTER TABLE actions UPDATE parameters = '{}' WHERE seq = 2 SETTINGS mutations_sync = 1")
    report = verify_pack(fetch(harness, story.breach))
    assert not report.ok and any("entry 2" in p for p in report.problems)


def test_the_cli_verifies_offline(harness: Harness, story: Story, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.zip", tmp_path / "bad.zip"
    good.write_bytes(fetch(harness, story.breach))
    files = unzip(good.read_bytes())
    files["events.json"] = b"[]\n"
    bad.write_bytes(rezip(files))
    runner = CliRunner()
    ok = runner.invoke(main, ["evidence", "verify", str(good)])
    assert ok.exit_code == 0 and "OK" in ok.output and "checked: audit chain: 3 entries" in ok.output
    failed = runner.invoke(main, ["evidence", "verify", str(bad), "--json"])
    assert failed.exit_code == 1
    assert json.loads(failed.output)["problems"] == ["events.json was changed: its SHA-256 differs from the manifest"]


def test_unknown_and_malformed_fingerprints(harness: Harness) -> None:
    for fingerprint, status in (("0" * 64, 404), ("nope", 400), ("A" * 64, 400)):
        response = harness.client.get(f"/api/v1/findings/{fingerprint}/evidence", headers=ADMIN)
        assert response.status_code == status
        assert "fingerprint" in response.json()["error"]["message"]
