"""Joining a running cluster: `--initial-cluster` built from the live member list.

After `member add` (done by a person with etcdctl, or by the operator), the new
member must start with `--initial-cluster-state existing` and an initial cluster
that matches the live membership exactly. Building it from the member list
removes the most error-prone flag of runtime reconfiguration.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence

from .contract import Member
from .findings import Finding, error
from .httpjson import HTTPError, TLSClient, call
from .urls import format_initial_cluster


def parse_members(answer: dict) -> list[Member]:
    """Members from the v3 JSON gateway's `/v3/cluster/member/list` answer."""
    return [
        Member(
            id=int(m.get("ID", 0)),
            name=m.get("name", ""),
            peer_urls=tuple(m.get("peerURLs", [])),
            client_urls=tuple(m.get("clientURLs", [])),
            is_learner=bool(m.get("isLearner", False)),
        )
        for m in answer.get("members", [])
    ]


# The gateway's answers once etcd auth is on: it refuses a certificate with a CommonName (it could not pass
# it on) and a request without a token. The member list over gRPC needs only the certificate's identity.
AUTH_REFUSALS = ("CommonName of client sending a request against gateway", "user name is empty")


def member_list(endpoints: Sequence[str], tls: TLSClient | None = None, timeout: float = 5.0) -> list[Member]:
    """Ask each endpoint in turn (I/O); raises HTTPError when none answers.

    With etcd auth on, the same question goes over gRPC with etcdctl (in the node image beside etcd), where
    the member's certificate is its identity.
    """
    failures = []
    for endpoint in endpoints:
        try:
            url = f"{endpoint.rstrip('/')}/v3/cluster/member/list"
            return parse_members(call(url, {"linearizable": True}, tls=tls, timeout=timeout))
        except HTTPError as exc:
            if not any(words in str(exc.body) for words in AUTH_REFUSALS):
                failures.append(str(exc))
                continue
        try:
            return member_list_grpc(endpoint, tls, timeout)
        except HTTPError as exc:
            failures.append(str(exc))
    raise HTTPError("; ".join(failures) or "no join endpoints given")


def member_list_grpc(endpoint: str, tls: TLSClient | None, timeout: float) -> list[Member]:
    etcdctl = os.environ.get("ETCD_NODE_ETCDCTL") or shutil.which("etcdctl") or "etcdctl"
    flags = [f"--{name}={value}" for name, value in (("cacert", tls.ca_file), ("cert", tls.cert_file),
                                                     ("key", tls.key_file)) if value] if tls else []  # fmt: skip
    argv = [etcdctl, f"--endpoints={endpoint}", *flags, f"--dial-timeout={int(timeout * 1000)}ms",
            f"--command-timeout={int(timeout * 1000)}ms", "member", "list", "-w", "json"]  # fmt: skip
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout * 2 + 5, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise HTTPError(f"{endpoint}: etcdctl member list: {exc}") from exc
    if done.returncode != 0:
        raise HTTPError(f"{endpoint}: etcdctl member list: {done.stderr.strip()[-300:]}")
    try:
        return parse_members(json.loads(done.stdout))
    except ValueError as exc:
        raise HTTPError(f"{endpoint}: etcdctl member list: {exc}") from exc


def initial_cluster(name: str, advertised: Sequence[str], members: Sequence[Member]) -> tuple[str, list[Finding]]:
    """The `--initial-cluster` for joining, or the reason joining cannot work."""
    mine = set(advertised)
    own = [m for m in members if mine & set(m.peer_urls)]
    peer_list = ",".join(advertised)
    if not own:
        return "", [
            error(
                "MemberNotAdded",
                f"{name} ({peer_list}) is not in the cluster's member list, so it cannot join as existing",
                f"add it first: etcdctl member add {name} --peer-urls={peer_list} --learner "
                "(then promote it once it has caught up)",
            )
        ]
    member = own[0]
    if member.started:
        return "", [
            error(
                "MemberAlreadyBootstrapped",
                f"member {member.name} ({member.id:x}) with peer URL {peer_list} has already been bootstrapped, "
                "but this data dir is empty: its data was lost",
                f"remove the stale entry (etcdctl member remove {member.id:x}), add it again "
                f"(etcdctl member add {name} --peer-urls={peer_list} --learner) and restart this member",
            )
        ]
    entries: list[tuple[str, str]] = []
    for m in members:
        member_name = name if m is member else (m.name or f"unstarted-{m.id:x}")
        entries += [(member_name, url) for url in m.peer_urls]
    # Sorted so the same membership always yields the same flag (readable, diffable).
    return format_initial_cluster(sorted(entries)), []


def bootstrap_state(name: str, advertised: Sequence[str], members: Sequence[Member] | None) -> tuple[str, list[Finding]]:
    """For a pod with an empty data dir: bootstrap with the others ("new"), or join ("existing")?

    A pod that lost its volume, or that the operator re-added after removing its
    stale entry, must not bootstrap a second cluster. The live member list says
    which case this is; when no member answers, the cluster is being created.
    """
    if members is None:
        return "new", []
    mine = set(advertised)
    own = next((m for m in members if mine & set(m.peer_urls)), None)
    if own is None:
        return "", [
            error(
                "MemberNotAdded",
                f"{name} ({','.join(advertised)}) is not in the running cluster's member list (it was removed)",
                "the operator adds it back as a learner; by hand: etcdctl member add "
                f"{name} --peer-urls={','.join(advertised)} --learner",
            )
        ]
    if own.started:
        _, findings = initial_cluster(name, advertised, members)
        return "", findings
    # Listed but never started: a learner re-added for us joins; an initial member starting late bootstraps.
    return ("existing" if own.is_learner else "new"), []


def restart_state(name: str, advertised: Sequence[str], members: Sequence[Member] | None) -> tuple[str, list[Finding]]:
    """For a pod whose data dir holds a member: restart from it ("restart"), or is that data stale ("stale")?

    After a scale-in the member is removed and its volume may be kept; when the
    same ordinal is added again it is a *new* member (new ID) and the old data
    would only make etcd exit with "permanently removed". The member list tells:
    our peer URL listed as a never-started learner means we were re-added.
    """
    if members is None:
        return "restart", []
    mine = set(advertised)
    own = next((m for m in members if mine & set(m.peer_urls)), None)
    if own is None:
        return "", [
            error(
                "MemberRemoved",
                f"{name} ({','.join(advertised)}) was removed from the cluster; its data dir is stale",
                "the operator adds it back as a learner, after which it rejoins with fresh data; by hand: "
                f"etcdctl member add {name} --peer-urls={','.join(advertised)} --learner",
            )
        ]
    if not own.started and own.is_learner:
        return "stale", []
    return "restart", []
