"""Quorum recovery from one surviving member (spec.recovery): etcd's `--force-new-cluster`, given once.

When most voting members are gone for good, etcd's documented way back that
keeps the data is to restart one surviving member with `--force-new-cluster`:
it rewrites the membership to itself alone (same cluster ID, same data, every
write it had applied) and the others are then added back as new members. The
flag must be given exactly once: a member restarted with it later would drop
every member added since.

The operator stops every member, mounts the request (contract.RECOVERY_FILE:
`{"requestID": ..., "member": <the survivor's name>}`) and starts the members
again; before etcd starts, each one decides here (`decide`):

| this member is the request's | requestID in its marker | member data | what happens                      |
|------------------------------|-------------------------|-------------|-----------------------------------|
| yes                          | no                      | yes         | marker written, etcd starts with --force-new-cluster |
| yes                          | yes                     | -           | a plain restart                   |
| yes                          | no                      | no          | refused: nothing to recover from  |
| no                           | -                       | -           | starts only once the member list answers (the survivor is up) |

The last row is the fence: while the request is mounted, a member that cannot
read the member list never restarts the old cluster from its own data, nor
bootstraps a new one with the other members that lost theirs. Once the
survivor answers, the usual rules apply: a member not in its list waits to be
added back, and old data of a member added back is set aside (plan.py).

The marker (`<data-dir>.recoveries.json`, beside the data dir like the
in-place restore's) is written before etcd starts. If etcd dies before it has
rewritten the membership, the member later restarts without the flag into
the old membership and quorum is still lost: the operator reports QuorumLost
again and a new requestID repeats the recovery. Forcing twice is never risked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .bootstrap_restore import read_request_file
from .findings import Finding, error
from .inplace_restore import data_dir, read_applied, write_applied

FORCE_NEW_CLUSTER = "--force-new-cluster"


@dataclass(frozen=True)
class RecoveryRequest:
    request_id: str
    member: str  # the surviving member's name (its pod name in a cluster the operator runs)

    @classmethod
    def parse(cls, text: str) -> RecoveryRequest:
        raw = json.loads(text)
        if not isinstance(raw, dict) or not raw.get("requestID") or not raw.get("member"):
            raise ValueError("needs requestID and member")
        return cls(str(raw["requestID"]), str(raw["member"]))


@dataclass(frozen=True)
class Force:
    """Start etcd with --force-new-cluster; the marker records the request first."""

    marker: Path


@dataclass(frozen=True)
class Proceed:
    reason: str


def marker_path(options: Mapping[str, str]) -> Path:
    directory = data_dir(options)
    return directory.with_name(f"{directory.name}.recoveries.json")


def read_request(path: Path) -> RecoveryRequest | Finding | None:
    """The request at path; None when there is none (the normal case); a Finding when it cannot be read."""
    return read_request_file(path, RecoveryRequest.parse, "Recovery", "the operator writes this file; remove "
                             "spec.recovery and set it again with a new requestID")  # fmt: skip


def decide(request: RecoveryRequest, options: Mapping[str, str], applied: frozenset[str], member_data: bool,
           members_answered: bool) -> Force | Proceed | Finding:  # fmt: skip
    """This member's part in recovery `request` (pure; see the table in the module docstring)."""
    name = options.get("name", "")
    if name != request.member:
        if members_answered:
            return Proceed(f"recovery {request.request_id} is from {request.member}, which answers: start as usual")
        return error(
            "RecoveryPending",
            f"recovery {request.request_id}: waiting for {request.member} to restart as a one-member cluster; "
            f"{name} starts once it answers (it is then added back as a new member)",
            "nothing to do: the operator adds this member back once the survivor is up; if "
            f"{request.member} cannot start, see its log",
        )
    if request.request_id in applied:
        return Proceed(f"recovery {request.request_id} was applied already: a plain restart")
    if not member_data:
        return error(
            "RecoveryMemberHasNoData",
            f"recovery {request.request_id} names {name}, but its data dir {data_dir(options)} holds no member "
            "data to recover from",
            "set spec.recovery.fromMember to a member that still has its data (the QuorumLost condition lists "
            "them), with a new requestID; or restore a backup with spec.restore",
        )
    return Force(marker_path(options))


def apply(request: RecoveryRequest, options: Mapping[str, str], member_data: bool, members_answered: bool,
          dry_run: bool = False) -> tuple[list[str], str, list[Finding]]:  # fmt: skip
    """(extra etcd flags, what was decided, findings): reads and, for the survivor, writes the marker."""
    marker = marker_path(options)
    applied = read_applied(marker)
    decision = decide(request, options, applied, member_data, members_answered)
    if isinstance(decision, Finding):
        return [], "", [decision]
    if isinstance(decision, Proceed):
        return [], decision.reason, []
    what = f"recovery {request.request_id}: starting once with {FORCE_NEW_CLUSTER} (a one-member cluster)"
    if dry_run:
        return [FORCE_NEW_CLUSTER], f"would start: {what}", []
    try:
        write_applied(decision.marker, applied | {request.request_id})
    except OSError as exc:
        return [], "", [error("RecoveryMarkerNotWritten", f"cannot record recovery {request.request_id} in "
                              f"{decision.marker}: {exc}", "make the data volume writable by the etcd user")]  # fmt: skip
    return [FORCE_NEW_CLUSTER], what, []
