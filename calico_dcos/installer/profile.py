"""The default profile: one Calico profile, named after the CNI network, that allows all.

Calico's CNI plugin puts every task of a network in the profile named after the network, and
creates that profile if it is missing with rules that admit traffic only from the same
profile. DC/OS 2.x creates it first, once, allowing all traffic to and from tasks
(dcos/dcos@2.2 `packages/calico/extra/profile.yaml`, applied by `start-calico-felix.sh` only
when `calicoctl get profile calico` finds none); `allow-all` does the same here, straight in
etcd, since no calicoctl runs on the agents. A profile that exists is never changed: an
operator's policy stays.

Keys, as Calico's libcalico-go stores them:
- etcd v2 (Calico v2.6, libcalico-go v1.7 `lib/backend/model/profile.go`):
  `/calico/v1/policy/profile/<name>/rules` {"inbound_rules": […], "outbound_rules": […]} and
  `/calico/v1/policy/profile/<name>/tags` […], written with etcd's v2 HTTP API
  (`PUT /v2/keys/<key>?prevExist=false`).
- etcd v3 (Calico v3, libcalico-go `lib/backend/model/resource.go`):
  `/calico/resources/v3/projectcalico.org/profiles/<name>`, the Profile resource as JSON,
  written with etcd's JSON gateway (`POST /v3/kv/txn`, put only if the key's create_revision
  is 0). etcd's grpc-proxy serves no gateway (etcd v3.4 `etcdmain/grpc_proxy.go`
  `mustHTTPListener`: metrics and health only), so v3 goes to the cluster itself.
"""

import base64
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from typing import List

from .hostfs import InstallerError

LOG = logging.getLogger("calico-installer")
TIMEOUT_SECONDS = 10.0
V2_PREFIX = "/calico/v1/policy/profile/"
V3_PREFIX = "/calico/resources/v3/projectcalico.org/profiles/"


def v2_values(name: str) -> dict:
    """key -> JSON text of the allow-all profile in Calico v2.6's data model."""
    rules = {"inbound_rules": [{"action": "allow"}], "outbound_rules": [{"action": "allow"}]}
    return {
        V2_PREFIX + name + "/rules": json.dumps(rules, sort_keys=True),
        V2_PREFIX + name + "/tags": json.dumps([name]),
    }


def v3_value(name: str) -> str:
    """The allow-all Profile resource, as DC/OS 2.x's profile.yaml has it."""
    allow = [{"action": "Allow", "source": {}, "destination": {}}]
    profile = {
        "kind": "Profile",
        "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": name},
        "spec": {"ingress": allow, "egress": allow, "labelsToApply": {name: ""}},
    }
    return json.dumps(profile, sort_keys=True)


def _request(url: str, data: bytes, method: str, content_type: str) -> dict:
    request = urllib.request.Request(  # noqa: S310 (the etcd endpoints of the step's options)
        url, data=data, method=method, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:  # noqa: S310
            return json.loads(answer.read().decode() or "{}")
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")
        return {"_status": exc.code, **_json_or_text(body)}


def _json_or_text(body: str) -> dict:
    try:
        value = json.loads(body)
    except ValueError:
        return {"_text": body}
    return value if isinstance(value, dict) else {"_text": body}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def ensure_v2(endpoint: str, name: str) -> bool:
    """Create the profile with etcd's v2 API unless it exists; True if created now."""
    created = False
    for key, value in v2_values(name).items():
        url = endpoint.rstrip("/") + "/v2/keys" + urllib.parse.quote(key) + "?prevExist=false"
        answer = _request(url, urllib.parse.urlencode({"value": value}).encode(), "PUT",
                          "application/x-www-form-urlencoded")  # fmt: skip
        if answer.get("_status") == 412 or answer.get("errorCode") == 105:  # key exists
            continue
        if "_status" in answer:
            raise InstallerError(f"etcd v2 at {endpoint} refused {key}: {answer}")
        created = True
    return created


def ensure_v3(endpoint: str, name: str) -> bool:
    """Create the profile with etcd's v3 JSON gateway unless it exists; True if created now."""
    key = _b64(V3_PREFIX + name)
    txn = {
        "compare": [{"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
        "success": [{"request_put": {"key": key, "value": _b64(v3_value(name))}}],
    }
    answer = _request(endpoint.rstrip("/") + "/v3/kv/txn", json.dumps(txn).encode(), "POST",
                      "application/json")  # fmt: skip
    if "_status" in answer:
        raise InstallerError(f"etcd v3 at {endpoint} refused the profile {name}: {answer}")
    return bool(answer.get("succeeded"))


def ensure_allow_all(endpoints: List[str], etcd_api: str, name: str) -> None:
    """Try each endpoint until one answers; InstallerError if none does."""
    ensure = ensure_v2 if etcd_api == "v2" else ensure_v3
    problems = []
    for endpoint in endpoints:
        try:
            created = ensure(endpoint, name)
        except (OSError, ValueError) as exc:
            problems.append(f"{endpoint}: {exc}")
            continue
        state = "created, allowing all traffic" if created else "already there, left as it is"
        LOG.info("Calico profile %s (etcd %s): %s", name, etcd_api, state)
        return
    raise InstallerError("no etcd endpoint took the default profile: " + "; ".join(problems))
