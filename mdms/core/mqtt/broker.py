"""Keeps Mosquitto's accounts and ACLs in step with the meter registry (dynamic-security plugin).

The broker is administered over MQTT: JSON command batches go to `$CONTROL/dynamic-security/v1`
and the plugin answers on `.../response`. Who may do what:

| account                  | roles                     | may                                            |
|--------------------------|---------------------------|------------------------------------------------|
| meter `{serial}`         | `meter-{serial}`, `meter` | publish meters/{serial}/{readings,events,replies}; subscribe meters/{serial}/commands |
| ingest (settings)        | `ingest`                  | subscribe meters/+/{readings,events,replies}, alone or shared ($share/ingest/..., or the group INGEST_SHARE_GROUP names); publish meters/+/commands |

Mosquitto 2.0.11's dynamic-security plugin does not expand `%u` in ACL topics (tried: a role with
`meters/%u/readings` refused the meter's own publish), so each meter has a role of its own. The
shared `meter` role, below it in priority, denies everything, so that a meter stays confined even
if someone loosens the broker's default ACL access.

The plugin in 2.0 rewrites its whole JSON file after every state-changing command, so the cost of
a command grows with the number of accounts. Syncs therefore read the broker's state first (reads
are free) and send only the commands that change something: a second `sync_all` sends none.

The broker gets a meter's clear password only at registration (`meter_sync(pk, password)`) and
keeps its own hash; the registry keeps another. A meter whose account the broker never received
gets an account with no password (it cannot log in) until new credentials are issued.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import paho.mqtt.client as mqtt
from django.conf import settings

from mdms.core import selectors
from mdms.core.models import Meter
from mdms.core.mqtt import certificates, topics
from mdms.core.mqtt import client as mqtt_client

logger = logging.getLogger(__name__)

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
METER_ROLE = "meter"
INGEST_ROLE = "ingest"
# Commands per control message: one message is one round trip, and 1,000 commands stay well below
# any payload limit (about 300 KB).
BATCH_SIZE = 1000
# A batch that changes state makes the plugin rewrite its file once per command; allow for that.
REPLY_TIMEOUT_S = 120.0

Command = dict[str, Any]


BrokerError = mqtt_client.BrokerError  # callers catch broker.BrokerError


def meter_role(serial: str) -> str:
    return f"{METER_ROLE}-{serial}"


def _acl(acltype: str, topic: str, *, allow: bool = True) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "priority": 0, "allow": allow}


def meter_acls(serial: str) -> list[dict[str, Any]]:
    return [
        *(_acl("publishClientSend", topics.topic(serial, kind)) for kind in topics.INBOUND),
        _acl("subscribeLiteral", topics.topic(serial, topics.Kind.COMMANDS)),
    ]


def shared_meter_acls() -> list[dict[str, Any]]:
    return [_acl("publishClientSend", "#", allow=False), _acl("subscribePattern", "#", allow=False)]


def ingest_acls() -> list[dict[str, Any]]:
    groups = sorted({topics.SHARE_GROUP, settings.INGEST_SHARE_GROUP} - {""})
    return [
        *(_acl("subscribePattern", topics.wildcard(kind)) for kind in topics.INBOUND),
        *(_acl("subscribePattern", topics.shared(kind, group)) for group in groups for kind in topics.INBOUND),
        _acl("publishClientSend", topics.wildcard(topics.Kind.COMMANDS)),
    ]


def _acl_key(acls: Iterable[dict[str, Any]]) -> set[tuple[str, str, int, bool]]:
    return {(a["acltype"], a["topic"], int(a.get("priority", 0)), bool(a["allow"])) for a in acls}


class Admin:
    """One administrator session on the broker: send command batches, get the replies in order."""

    def __init__(self) -> None:
        username, password = mqtt_client.admin_credentials()
        self._session = uuid.uuid4().hex[:12]
        self._client = mqtt_client.new_client(
            client_id=f"mdms-admin-{self._session}", username=username, password=password
        )
        self._connection = ExitStack()
        self._ready = threading.Event()
        self._connect_error: str | None = None
        self._replies: dict[str, Command] = {}
        self._replied = threading.Condition()
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe(RESPONSE_TOPIC, qos=1)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        if any(r.is_failure for r in reasons):
            self._connect_error = f"admin may not read {RESPONSE_TOPIC}: {reasons}"
        self._ready.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            responses = json.loads(message.payload)["responses"]
        except (ValueError, KeyError, TypeError):
            logger.warning("unreadable dynamic-security reply: %r", message.payload[:200])
            return
        with self._replied:
            for response in responses:
                key = response.get("correlationData", "")
                if key.startswith(f"{self._session}:"):
                    self._replies[key] = response
            self._replied.notify_all()

    def open(self) -> None:
        self._connection.enter_context(mqtt_client.session(self._client, keepalive=60))
        if not self._ready.wait(mqtt_client.CONNECT_TIMEOUT_S):
            self.close()
            raise BrokerError(f"no answer from the broker at {settings.MQTT_HOST}:{settings.MQTT_PORT}")
        if self._connect_error:
            self.close()
            raise BrokerError(self._connect_error)

    def close(self) -> None:
        self._connection.close()

    def run(self, commands: list[Command]) -> list[Command]:
        """Send commands (in batches) and return their responses, in the same order."""
        responses: list[Command] = []
        for start in range(0, len(commands), BATCH_SIZE):
            batch = commands[start : start + BATCH_SIZE]
            keys = [f"{self._session}:{start + i}" for i in range(len(batch))]
            payload = json.dumps({"commands": [{**c, "correlationData": k} for c, k in zip(batch, keys, strict=True)]})
            self._client.publish(CONTROL_TOPIC, payload, qos=1)
            with self._replied:
                if not self._replied.wait_for(partial(self._replies.__contains__, keys[-1]), REPLY_TIMEOUT_S):
                    raise BrokerError(f"no reply to {len(batch)} dynamic-security commands")
                responses.extend(self._replies.pop(k, {"error": "no reply"}) for k in keys)
        return responses

    def run_checked(self, commands: list[Command], *, tolerated: frozenset[str] = frozenset()) -> list[Command]:
        """run(), raising BrokerError when a command failed for a reason not tolerated."""
        responses = self.run(commands)
        for command, response in zip(commands, responses, strict=True):
            error = response.get("error")
            if error and error not in tolerated:
                raise BrokerError(f"{command['command']} failed: {error}")
        return responses


@contextmanager
def admin_session() -> Iterator[Admin]:
    admin = Admin()
    admin.open()
    try:
        yield admin
    finally:
        admin.close()


@dataclass
class SyncReport:
    """What a sync changed: counts by kind of change, for `mqtt_sync` to print."""

    meters: int = 0
    changed: int = 0
    created: int = 0
    without_password: int = 0
    roles_fixed: int = 0
    passwords_set: int = 0
    enabled: int = 0
    disabled: int = 0
    commands: int = 0
    serials_without_password: list[str] = field(default_factory=list)

    @property
    def unchanged(self) -> int:
        return self.meters - self.changed


def _plan_role(rolename: str, acls: list[dict[str, Any]], current: Command | None) -> list[Command]:
    if current is None:
        return [{"command": "createRole", "rolename": rolename, "acls": acls}]
    if _acl_key(current.get("acls", [])) != _acl_key(acls):
        return [{"command": "modifyRole", "rolename": rolename, "acls": acls}]
    return []


def _plan_meter(
    serial: str,
    *,
    enabled: bool,
    password: str | None,
    client: Command | None,
    role: Command | None,
    report: SyncReport,
) -> list[Command]:
    """The commands that bring one meter's account and role to what the registry says."""
    commands = _plan_role(meter_role(serial), meter_acls(serial), role)
    report.roles_fixed += bool(commands)
    # Own role first: dynamic-security checks a client's roles by descending priority. A disabled
    # meter keeps only the deny-all `meter` role: Mosquitto 2.0.11 lets a disabled account in when
    # it logs in with a certificate (use_identity_as_username skips the password check, where the
    # plugin looks at `disabled`; tried on this project's broker), so its ACLs must say no as well.
    wanted_roles = [{"rolename": METER_ROLE, "priority": 0}]
    if enabled:
        wanted_roles.insert(0, {"rolename": meter_role(serial), "priority": 1})
    if client is None:
        create: Command = {"command": "createClient", "username": serial, "roles": wanted_roles}
        if password is not None:
            create["password"] = password
        else:
            report.without_password += 1
            report.serials_without_password.append(serial)
        commands.append(create)
        report.created += 1
        if not enabled:
            commands.append({"command": "disableClient", "username": serial})
            report.disabled += 1
        return commands
    if password is not None:
        commands.append({"command": "setClientPassword", "username": serial, "password": password})
        report.passwords_set += 1
    have = {r["rolename"] for r in client.get("roles", [])}
    wanted = {r["rolename"] for r in wanted_roles}
    commands += [
        {"command": "removeClientRole", "username": serial, "rolename": name} for name in sorted(have - wanted)
    ]
    commands += [
        {"command": "addClientRole", "username": serial, **r} for r in wanted_roles if r["rolename"] not in have
    ]
    is_disabled = bool(client.get("disabled", False))
    if enabled and is_disabled:
        commands.append({"command": "enableClient", "username": serial})
        report.enabled += 1
    elif not enabled and not is_disabled:
        commands.append({"command": "disableClient", "username": serial})
        report.disabled += 1
    return commands


def _apply(admin: Admin, commands: list[Command], report: SyncReport) -> None:
    report.commands += len(commands)
    if commands:
        admin.run_checked(commands)


def _ensure_roles(admin: Admin, report: SyncReport) -> None:
    current = admin.run_checked(
        [{"command": "getRole", "rolename": METER_ROLE}, {"command": "getRole", "rolename": INGEST_ROLE}],
        tolerated=frozenset({"Role not found"}),
    )
    commands = _plan_role(METER_ROLE, shared_meter_acls(), current[0].get("data", {}).get("role"))
    commands += _plan_role(INGEST_ROLE, ingest_acls(), current[1].get("data", {}).get("role"))
    _apply(admin, commands, report)


def _ingest_password_works() -> bool:
    """Whether the broker accepts the ingest credentials as configured (a real CONNECT)."""
    username, password = mqtt_client.ingest_credentials()
    probe = mqtt_client.new_client(client_id=f"mdms-probe-{uuid.uuid4().hex[:8]}", username=username, password=password)
    try:
        with mqtt_client.session(probe, keepalive=10):
            return True
    except mqtt_client.BrokerRefused:
        return False


def _ensure_ingest_account(admin: Admin, report: SyncReport) -> None:
    _ensure_roles(admin, report)
    username, password = mqtt_client.ingest_credentials()
    if not password:
        raise BrokerError("MQTT_INGEST_PASSWORD is empty; the ingest account needs one")
    reply = admin.run_checked(
        [{"command": "getClient", "username": username}], tolerated=frozenset({"Client not found"})
    )[0]
    current = reply.get("data", {}).get("client")
    wanted_roles = [{"rolename": INGEST_ROLE, "priority": 0}]
    commands: list[Command] = []
    if current is None:
        commands.append({"command": "createClient", "username": username, "password": password, "roles": wanted_roles})
    else:
        if INGEST_ROLE not in {r["rolename"] for r in current.get("roles", [])}:
            commands.append({"command": "addClientRole", "username": username, **wanted_roles[0]})
        if current.get("disabled"):
            commands.append({"command": "enableClient", "username": username})
        # Setting the password rewrites the plugin's file; probe first so a re-run changes nothing.
        if not _ingest_password_works():
            commands.append({"command": "setClientPassword", "username": username, "password": password})
    _apply(admin, commands, report)


def ensure_ingest_account() -> None:
    """The ingest workers' account exists, with the configured password and the `ingest` role."""
    with admin_session() as admin:
        _ensure_ingest_account(admin, SyncReport())


def meter_sync(meter_pk: int, password: str | None) -> SyncReport:
    """Bring one meter's broker account in line with the registry (raises BrokerError)."""
    report = SyncReport()
    meter = Meter.objects.filter(pk=meter_pk).only("serial", "status").first()
    if meter is None:
        return report
    with admin_session() as admin:
        client_reply, role_reply = admin.run_checked(
            [
                {"command": "getClient", "username": meter.serial},
                {"command": "getRole", "rolename": meter_role(meter.serial)},
            ],
            tolerated=frozenset({"Client not found", "Role not found"}),
        )
        commands = _plan_meter(
            meter.serial,
            enabled=meter.status in Meter.ACCEPTING_STATUSES,
            password=password,
            client=client_reply.get("data", {}).get("client"),
            role=role_reply.get("data", {}).get("role"),
            report=report,
        )
        _apply(admin, commands, report)
    report.meters = 1
    report.changed = int(bool(commands))
    return report


def meter_access_changed(meter_pk: int, password: str | None) -> None:
    """The hook services call after a commit: never let a broker outage break the caller.

    A failure is logged; `manage.py mqtt_sync` repairs status and ACLs later (a password the broker
    missed cannot be repaired, since only its hash is kept: issue new credentials).
    """
    try:
        meter_sync(meter_pk, password)
    except Exception:
        # Any failure at all: the request that changed the meter has committed and must succeed.
        logger.exception(
            "could not update the broker for meter pk=%s%s; run manage.py mqtt_sync",
            meter_pk,
            " (new password lost: issue credentials again)" if password else "",
        )


def _list_all(admin: Admin, command: str, key: str) -> dict[str, Command]:
    reply = admin.run_checked([{"command": command, "verbose": True, "count": -1}])[0]
    items = reply.get("data", {}).get(key, [])
    name = "username" if key == "clients" else "rolename"
    return {item[name]: item for item in items}


def sync_all(*, passwords: dict[str, str] | None = None) -> SyncReport:
    """Every meter in the registry, plus the shared roles and the ingest account (idempotent).

    `passwords` (serial -> clear password): credentials just issued, set in the same session.
    """
    passwords = passwords or {}
    report = SyncReport()
    with admin_session() as admin:
        _ensure_ingest_account(admin, report)
        clients = _list_all(admin, "listClients", "clients")
        roles = _list_all(admin, "listRoles", "roles")
        commands: list[Command] = []
        # Meters on certificates have no password by design: not worth a warning when re-created.
        on_certificates = set(selectors.serials_with_valid_certificates())
        for serial, status in Meter.objects.order_by("serial").values_list("serial", "status").iterator(2000):
            missed_password = report.without_password
            planned = _plan_meter(
                serial,
                enabled=status in Meter.ACCEPTING_STATUSES,
                password=passwords.get(serial),
                client=clients.get(serial),
                role=roles.get(meter_role(serial)),
                report=report,
            )
            if serial in on_certificates and report.without_password > missed_password:
                report.without_password -= 1
                report.serials_without_password.remove(serial)
            report.meters += 1
            report.changed += bool(planned)
            commands += planned
        _apply(admin, commands, report)
    return report


def publish_crl() -> int:
    """Write the meter CA's CRL from the registry's revocations and have the broker read it.

    Returns how many certificates the CRL lists (it also keeps those it already listed).
    """
    revocations = [
        certificates.Revocation(int(serial, 16), revoked_at)
        for serial, revoked_at in selectors.revoked_certificate_serials()
    ]
    return certificates.configured_publish_crl(revocations)


def meter_certificates_revoked(meter_pk: int) -> None:
    """The hook services call after a commit that revoked a meter's certificate.

    The CRL goes out first, so that the broker refuses the old certificate; then an enabled meter's
    sessions are ended (disable and enable its account: the plugin disconnects a disabled client),
    so a session opened with the old certificate does not outlive it. A disabled meter's sessions
    were already ended by the access hook. Failures are logged; `manage.py mqtt_sync` republishes.
    """
    try:
        publish_crl()
    except Exception:
        logger.exception(
            "could not publish the CRL after revoking meter pk=%s's certificate; run manage.py mqtt_sync", meter_pk
        )
    meter = Meter.objects.filter(pk=meter_pk).only("serial", "status").first()
    if meter is None or meter.status not in Meter.ACCEPTING_STATUSES:
        return
    try:
        with admin_session() as admin:
            admin.run(
                [
                    {"command": "disableClient", "username": meter.serial},
                    {"command": "enableClient", "username": meter.serial},
                ]
            )
    except Exception:
        logger.exception("could not end meter %s's sessions after revoking its certificate", meter.serial)
