"""Read the facts the decision needs: data dir, member list, DNS, discovery registry, etcd's version, certificates.

This is the agent's only I/O before exec, and it decides nothing: `plan`
says which facts its decision reads (`member_list_timeout`, `wanted`), this
module reads exactly those into one `plan.Facts`, and `plan.decide` does the
rest. Failures become facts too (nobody answered, a file is unreadable), for
the pure checks to phrase.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace
from datetime import datetime

from . import datadir, discovery, join, plan
from .httpjson import HTTPError


def gather(options: plan.Options, now: datetime) -> plan.Facts:
    facts = plan.Facts(now=now, member_data=datadir.has_member_data(options.etcd))
    timeout = plan.member_list_timeout(options, facts.member_data)
    if timeout is not None:
        try:
            members = join.member_list(options.join_endpoints, options.join_tls, timeout=timeout)
            facts = replace(facts, members=tuple(members))
        except HTTPError as exc:
            facts = replace(facts, members_failure=str(exc))
    wanted = plan.wanted(options, facts)
    if wanted.hosts or wanted.srv:
        from . import srv  # dnspython loads only when a name must be resolved

        facts = replace(facts, addresses={host: tuple(srv.resolve_host(host)) for host in wanted.hosts})
        if wanted.srv:
            facts = replace(facts, srv=srv.lookup(*wanted.srv))
    if wanted.discovery_v2:
        facts = replace(facts, discovery_v2=discovery.fetch_v2(*wanted.discovery_v2))
    if wanted.etcd_version:
        facts = replace(facts, etcd_version=etcd_version(options.etcd_bin))
    if wanted.discovery_v3 is not None and plan.v3_discovery_supported(facts.etcd_version):
        facts = replace(facts, discovery_v3=discovery.fetch_v3(wanted.discovery_v3))
    if wanted.certificates:
        from . import tls  # cryptography loads only when there are certificates to check

        facts = replace(facts, certificates=tuple(tls.load(side) for side in tls.configured_sides(options.etcd)))
    return facts


def etcd_version(etcd_bin: str) -> tuple[int, int, int] | None:
    try:
        out = subprocess.run([etcd_bin, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"etcd Version: (\d+)\.(\d+)\.(\d+)", out)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None
