import pytest

from etcd_operator.reconcile.versions import Version, upgrade_refusal


@pytest.mark.parametrize(
    ("running", "wanted", "reason"),
    [
        ("3.5.35", "3.6.16", None),
        ("3.6.16", "3.6.17", None),
        ("3.6.16", "3.6.16", None),
        ("3.6.16", "3.6.10", "DowngradeNotSupported"),
        ("3.6.16", "3.5.35", "DowngradeNotSupported"),
        ("3.5.35", "3.7.0", "MinorVersionSkipped"),
        ("3.5.31", "3.6.16", "PatchBelowUpgradeMinimum"),
        ("3.5.32", "3.6.0", None),
        ("3.6.10", "3.7.0", "PatchBelowUpgradeMinimum"),
        ("3.6.11", "3.7.0", None),
    ],
)
def test_upgrade_path_rules(running, wanted, reason):
    refusal = upgrade_refusal(Version.parse(running), Version.parse(wanted))
    assert (refusal.reason if refusal else None) == reason
    if refusal:
        assert wanted in refusal.message and running in refusal.message  # the rule names both ends


def test_versions_parse_from_what_etcd_reports():
    assert Version.parse("3.6.16") == Version(3, 6, 16) == Version.parse("v3.6.16")
    assert Version.parse("not a version") is None
    assert Version(3, 5, 35) < Version(3, 6, 0)
