"""The etcd auth planner (reconcile.auth): tls.clients[].access and etcd's users and roles -> the calls, in order.

`fakes.auth_apply` applies calls to an AuthView the way etcd's auth store does (a grant on an
existing range replaces its type; the root role needs no role entry), so each test
can stop a plan after any call, plan again from what etcd then holds, and check
that the passes end where one uninterrupted pass ends.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError

from etcd_operator.models.cluster import AccessStatus, EtcdClusterSpec
from etcd_operator.reconcile import auth
from etcd_operator.reconcile.auth import (
    AuthDisable,
    AuthEnable,
    AuthOutcome,
    AuthView,
    Grant,
    RoleAdd,
    RoleDelete,
    RoleGrant,
    RoleRevoke,
    UserAdd,
    UserDelete,
    UserGrant,
    UserPassword,
    UserRevoke,
)
from tests.unit.operator.fakes import auth_apply as apply


def spec(*clients: dict) -> EtcdClusterSpec:
    return EtcdClusterSpec.model_validate({"tls": {"clients": list(clients)}})


ALICE = {"name": "alice", "access": [{"prefix": "/app/", "permission": "readwrite"}]}
APP = Grant(b"/app/", b"/app0", "READWRITE")
EMPTY = AuthView(enabled=False, revision=1)


def run(desired: auth.DesiredAccess, view: AuthView, stop_after: int | None = None) -> tuple[AuthView, list[auth.Call]]:
    """Plan and apply passes until nothing is left; the first pass stops after `stop_after` calls (a crash)."""
    made: list[auth.Call] = []
    for n in range(10):
        planned = auth.plan_auth(desired, view)
        if planned.matched:
            return view, made
        calls = planned.calls[: stop_after if n == 0 and stop_after is not None else auth.MAX_CALLS]
        for call in calls:
            view = apply(view, call)
            made.append(call)
    raise AssertionError("never converged")


def test_turning_auth_on_makes_the_operator_and_root_first_and_enables_last():
    desired = auth.desired_access(spec(ALICE, {"name": "bob"}))
    planned = auth.plan_auth(desired, EMPTY)
    assert planned.calls == (
        RoleAdd("user-alice"), RoleGrant("user-alice", APP),
        RoleAdd("user-bob"), RoleAdd("user-etcd-operator"), RoleAdd("user-root"),
        UserAdd("etcd-operator", password=True), UserGrant("etcd-operator", "root"),
        UserGrant("etcd-operator", "user-etcd-operator"),
        UserAdd("root"), UserGrant("root", "root"), UserGrant("root", "user-root"),
        UserAdd("alice"), UserGrant("alice", "user-alice"),
        UserAdd("bob"), UserGrant("bob", "root"), UserGrant("bob", "user-bob"),
        AuthEnable(),
    )  # fmt: skip
    assert all("password" not in repr(c) or isinstance(c, UserAdd) for c in planned.calls)  # no secret in a plan
    assert auth.describe(planned.calls[1]) == "grant readwrite /app/* to role user-alice"


def test_a_user_left_over_from_an_earlier_start_gets_the_operators_password_before_auth_is_enabled():
    view = AuthView(False, 5, frozenset({"etcd-operator"}), {"etcd-operator": frozenset()}, {})
    calls = auth.plan_auth(auth.desired_access(spec(ALICE)), view).calls
    assert calls[-2:] == (UserPassword("etcd-operator"), AuthEnable())
    assert UserAdd("etcd-operator", password=True) not in calls


@pytest.mark.parametrize("stop_after", range(0, 17))
def test_a_pass_stopped_after_any_call_is_finished_by_the_next(stop_after):
    desired = auth.desired_access(spec(ALICE, {"name": "bob"}))
    straight, _ = run(desired, EMPTY)
    resumed, made = run(desired, EMPTY, stop_after=stop_after)
    assert (resumed.enabled, resumed.names, resumed.users, resumed.roles) == (
        straight.enabled, straight.names, straight.users, straight.roles)  # fmt: skip
    assert made.count(AuthEnable()) == 1 and made[-1] == AuthEnable()
    assert auth.plan_auth(desired, resumed).matched


def test_permissions_are_made_exact_extra_ones_revoked_and_a_changed_type_granted_over():
    on, _ = run(auth.desired_access(spec(ALICE)), EMPTY)
    by_hand = apply(apply(on, RoleGrant("user-alice", Grant(b"/secret/", b"/secret0", "READ"))),
                    UserGrant("alice", "root"))  # fmt: skip
    changed = {"name": "alice", "access": [{"prefix": "/app/", "permission": "read"},
                                           {"prefix": "/logs/", "permission": "write"}]}  # fmt: skip
    calls = auth.plan_auth(auth.desired_access(spec(changed)), by_hand).calls
    assert calls == (
        RoleRevoke("user-alice", Grant(b"/secret/", b"/secret0", "READ")),
        RoleGrant("user-alice", Grant(b"/app/", b"/app0", "READ")),
        RoleGrant("user-alice", Grant(b"/logs/", b"/logs0", "WRITE")),
        UserRevoke("alice", "root"),
    )


def test_a_removed_user_loses_its_etcd_user_first_then_its_role():
    on, _ = run(auth.desired_access(spec(ALICE, {"name": "bob"})), EMPTY)
    calls = auth.plan_auth(auth.desired_access(spec(ALICE)), on).calls
    assert calls == (UserDelete("bob"), RoleDelete("user-bob"))


def test_a_user_losing_its_access_list_gets_full_access_and_a_user_gaining_one_loses_root():
    on, _ = run(auth.desired_access(spec(ALICE, {"name": "bob"})), EMPTY)
    bob_limited = {"name": "bob", "access": [{"prefix": "/b/", "permission": "read"}]}
    calls = auth.plan_auth(auth.desired_access(spec({"name": "alice"}, bob_limited)), on).calls
    assert calls == (
        RoleRevoke("user-alice", APP),
        RoleGrant("user-bob", Grant(b"/b/", b"/b0", "READ")),
        UserGrant("alice", "root"),
        UserRevoke("bob", "root"),
    )


def test_no_access_left_disables_auth_then_deletes_what_the_operator_made_and_nothing_else():
    on, _ = run(auth.desired_access(spec(ALICE)), EMPTY)
    theirs = apply(apply(on, UserAdd("app")), RoleAdd("reader"))
    calls = auth.plan_auth(auth.DesiredAccess(), theirs).calls
    assert calls == (
        AuthDisable(),
        UserDelete("alice"), UserDelete("etcd-operator"), UserDelete("root"),
        RoleDelete("user-alice"), RoleDelete("user-etcd-operator"), RoleDelete("user-root"),
    )  # fmt: skip
    for stop_after in range(len(calls) + 1):
        off, _ = run(auth.DesiredAccess(), theirs, stop_after=stop_after)
        assert not off.enabled and off.names == {"app"} and set(off.roles) == {"reader"}


def test_auth_someone_else_turned_on_is_reported_and_never_turned_off():
    theirs = AuthView(True, 9, frozenset({"root"}), {"root": frozenset({"root"})}, {})
    planned = auth.plan_auth(auth.desired_access(spec(ALICE)), theirs)
    assert not planned.calls and planned.problem is not None and planned.problem.reason == "AccessFailed"
    assert "turned on by someone else" in planned.problem.message
    assert auth.plan_auth(auth.DesiredAccess(), theirs) == auth.AuthPlan(matched=True)


def test_a_settled_view_plans_nothing_and_keeps_the_record():
    desired = auth.desired_access(spec(ALICE))
    previous = AccessStatus(enabled=True, auth_revision=7, spec_hash=auth.settled_key(desired, 0xC1))
    settled = AuthView(True, 7, settled=True)
    planned = auth.plan_auth(desired, settled)
    assert planned.matched and auth.record(desired, settled, planned, AuthOutcome(), previous) == previous


def test_status_record_and_condition_through_a_whole_turn_on_and_off():
    desired = auth.desired_access(spec(ALICE, {"name": "bob"}))
    planned = auth.plan_auth(desired, EMPTY)
    made = AuthOutcome(tuple(auth.describe(c) for c in planned.calls))
    assert auth.record(desired, EMPTY, planned, made, None) == AccessStatus(enabled=True)  # no revision: re-read
    ok, reason, message = auth.condition(desired, planned, made)
    assert (ok, reason) == (False, "AccessApplying") and "enable auth" in message
    on, _ = run(desired, EMPTY)
    matched = auth.plan_auth(desired, on)
    assert auth.record(desired, on, matched, AuthOutcome(), None) == AccessStatus(
        enabled=True, auth_revision=on.revision, spec_hash=auth.settled_key(desired, 0))  # fmt: skip
    assert auth.condition(desired, matched, AuthOutcome()) == (
        True, "AccessApplied", "etcd auth is on; alice: readwrite /app/*; bob: full access")  # fmt: skip
    failed = AuthOutcome((), "grant role user-alice to user alice: etcdserver: permission denied", 3)
    assert auth.condition(desired, planned, failed) == (False, "AccessFailed", failed.failed)
    off, _ = run(auth.DesiredAccess(), on)
    done = auth.plan_auth(auth.DesiredAccess(), off)
    assert auth.record(auth.DesiredAccess(), off, done, AuthOutcome(), AccessStatus(enabled=True)) is None
    assert auth.condition(auth.DesiredAccess(), done, AuthOutcome()) is None  # gone with status.access


def test_the_digest_follows_the_access_lists_only():
    a = auth.desired_access(spec(ALICE, {"name": "bob"}))
    assert a.digest() == auth.desired_access(spec({"name": "bob"}, ALICE)).digest()
    assert a.digest() != auth.desired_access(spec(ALICE)).digest()
    assert auth.desired_access(spec({"name": "bob"})) == auth.DesiredAccess()  # no access anywhere: auth off


def test_prefix_ends_as_etcdctl_computes_them():
    assert auth.prefix_end(b"/app/") == b"/app0"
    assert auth.prefix_end(b"a\xff") == b"b"
    assert auth.prefix_end(b"\xff\xff") == b"\0"


@pytest.mark.parametrize(
    ("client", "words"),
    [
        ({"name": "root", "access": [{"prefix": "/a/", "permission": "read"}]}, "root is an etcd user the operator needs"),
        ({"name": "etcd-operator", "access": [{"prefix": "/a/", "permission": "read"}]}, "etcd-operator is an etcd user"),
        ({"name": "alice", "access": []}, "at least 1 item"),
        ({"name": "alice", "access": [{"prefix": "", "permission": "read"}]}, "at least 1 character"),
        ({"name": "alice", "access": [{"prefix": "/a/", "permission": "all"}]}, "'read', 'write' or 'readwrite'"),
        ({"name": "alice", "access": [{"prefix": "/a/", "permission": "read"},
                                      {"prefix": "/a/", "permission": "write"}]}, "lists a prefix twice"),  # fmt: skip
    ],
)
def test_the_model_refuses_access_it_cannot_grant(client, words):
    with pytest.raises(ValidationError, match=words):
        spec(client)


def test_a_view_with_users_and_roles_of_others_only_owns_the_operators():
    view = replace(EMPTY, names=frozenset({"app", "alice"}), roles={"user-alice": frozenset(), "reader": frozenset()})
    assert view.owned_users == {"alice"} and view.owned_roles == {"user-alice"}
