"""Deterministic demo data: the grid, N premises with meters, customers, accounts and logins.

    manage.py seed_demo --meters 200            # fails if master data already exists
    manage.py seed_demo --meters 200 --if-empty # does nothing when there is data (make run)

The same N gives the same data every time. Meter MQTT passwords are written to
var/demo-meters.csv (serial,password,certificate,key), the provisioning file the meter simulator
reads; only their hashes are kept in the database. A few meters (--certificate-meters, 3 by
default: MTR000003 onwards) are registered with a client certificate instead of a password: their
certificate and key go to var/demo-meter-certs/, and the simulator runs them over TLS. A demo
seeded before certificates existed gets them on the next `--if-empty` run. The file has LF line
endings, so that `cut -d,` reads it.

With --if-empty on a seeded database whose credentials file is gone (a second clone sharing the
database, or after `make clean`), the demo meters get new credentials, written to the file and
set on the broker: the passwords cannot be recovered, only replaced.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from tqdm import tqdm

from mdms.config import VAR_DIR
from mdms.core import services
from mdms.core.localtime import local_today
from mdms.core.models import Feeder, Holiday, Meter, Premise, Region, Tariff, TouPeriod
from mdms.core.mqtt import broker, certificates
from mdms.core.roles import Role

DEMO_CREDENTIALS_FILE = VAR_DIR / "demo-meters.csv"
# Beside the credentials file; the CSV names the files relative to its own folder.
CERTIFICATES_DIR = "demo-meter-certs"
# Alice's and Bob's meters (the first two) keep passwords; certificates start with the third.
FIRST_CERTIFICATE_METER = 2
CSV_HEADER = ["serial", "password", "certificate", "key"]
# The serials seed_demo gives its meters (MTR000001, ...): only these get new demo credentials.
DEMO_SERIAL_REGEX = r"^MTR[0-9]{6}$"

# (code, name, centre latitude, centre longitude): four regions around Lyon, in the default zone.
REGIONS = [
    ("nord", "Lyon Nord", 45.805, 4.835),
    ("sud", "Lyon Sud", 45.715, 4.830),
    ("est", "Lyon Est", 45.760, 4.920),
    ("ouest", "Lyon Ouest", 45.765, 4.760),
]
FEEDERS_PER_REGION = 3
STREETS = [
    "Rue de la République", "Avenue Jean Jaurès", "Rue Garibaldi", "Cours Lafayette", "Rue Paul Bert",
    "Boulevard des Belges", "Rue Duguesclin", "Avenue Berthelot", "Rue Servient", "Quai Saint-Vincent",
    "Rue Vendôme", "Rue Créqui", "Montée de la Boucle", "Rue Tronchet", "Chemin de Montauban",
]  # fmt: skip
FIRST_NAMES = ["Camille", "Louis", "Emma", "Hugo", "Chloé", "Jules", "Léa", "Gabriel", "Manon", "Arthur", "Inès"]
LAST_NAMES = ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau"]

LOGINS = [
    # username, password, role, customer name (consumers only)
    ("alice", "alice-demo-2026", Role.CONSUMER, "Alice Fournier"),
    ("bob", "bob-demo-2026", Role.CONSUMER, "Bob Lambert"),
    ("olivia", "olivia-demo-2026", Role.OPERATOR, None),
    ("bill", "bill-demo-2026", Role.BILLING, None),
]
ADMIN_LOGIN = ("admin", "admin-demo-2026")


def _row(path: Path, serial: str, password: str, certificate: certificates.IssuedCertificate | None) -> list[str]:
    """A provisioning row; a certificate and its key are written beside the CSV (the key mode 0600)."""
    if certificate is None:
        return [serial, password, "", ""]
    directory = path.parent / CERTIFICATES_DIR
    directory.mkdir(parents=True, exist_ok=True)
    certificates.write_meter_files(certificate, directory)
    return [serial, password, f"{CERTIFICATES_DIR}/{serial}.crt", f"{CERTIFICATES_DIR}/{serial}.key"]


def _write_credentials(path: Path, rows: list[list[str]]) -> None:
    """The provisioning file, LF line endings, readable by its owner only, replaced whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    with temporary.open("w", newline="") as fh:
        temporary.chmod(0o600)
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        writer.writerows(rows)
    temporary.replace(path)


def _tariffs() -> dict[str, Tariff]:
    flat = Tariff.objects.create(
        code="res-flat", name="Residential flat", fixed_monthly_charge=Decimal("12.60"),
        energy_rate_per_kwh=Decimal("0.25160"), export_credit_per_kwh=Decimal("0.04000"),
    )  # fmt: skip
    tou = Tariff.objects.create(
        code="res-tou", name="Residential peak/off-peak", fixed_monthly_charge=Decimal("13.20"),
        energy_rate_per_kwh=None, export_credit_per_kwh=Decimal("0.04000"),
    )  # fmt: skip
    for day_type in (TouPeriod.DayType.WEEKDAY,):
        TouPeriod.objects.create(
            tariff=tou, name="off-peak", day_type=day_type, start_time=dt.time(22), end_time=dt.time(6),
            rate_per_kwh=Decimal("0.20680"),
        )  # fmt: skip
        TouPeriod.objects.create(
            tariff=tou, name="peak", day_type=day_type, start_time=dt.time(6), end_time=dt.time(22),
            rate_per_kwh=Decimal("0.27000"),
        )  # fmt: skip
    TouPeriod.objects.create(
        tariff=tou, name="off-peak", day_type=TouPeriod.DayType.WEEKEND, start_time=dt.time(0),
        end_time=dt.time(0), rate_per_kwh=Decimal("0.20680"),
    )  # fmt: skip
    business = Tariff.objects.create(
        code="sme-demand", name="Small business with demand", fixed_monthly_charge=Decimal("38.00"),
        energy_rate_per_kwh=Decimal("0.19500"), demand_charge_per_kw=Decimal("9.8000"),
        export_credit_per_kwh=Decimal("0.05000"),
    )  # fmt: skip
    return {"flat": flat, "tou": tou, "business": business}


def _holidays(years: range) -> None:
    fixed = [(1, 1, "Jour de l'an"), (5, 1, "Fête du Travail"), (5, 8, "Victoire 1945"), (7, 14, "Fête nationale"),
             (8, 15, "Assomption"), (11, 1, "Toussaint"), (11, 11, "Armistice"), (12, 25, "Noël")]  # fmt: skip
    Holiday.objects.bulk_create(
        [Holiday(date=dt.date(y, m, d), name=name) for y in years for m, d, name in fixed], ignore_conflicts=True
    )


# Feeder ratings per premise served. The simulated homes peak at about 2.8 kW each after diversity
# on a January evening (1.4 kW in July), so 4 kW a home leaves every feeder headroom all year,
# except OVERLOADED_FEEDER, rated at 1.8 kW a home on purpose: from October to April its forecast
# evening peak passes 90% of its rating, and the demo shows a capacity warning.
RATING_KW_PER_PREMISE = Decimal("4.0")
OVERLOADED_FEEDER = ("est-f2", Decimal("1.8"))


def _rating_kw(code: str, premises: int) -> Decimal:
    per_premise = OVERLOADED_FEEDER[1] if code == OVERLOADED_FEEDER[0] else RATING_KW_PER_PREMISE
    return max(Decimal("10.0"), per_premise * premises).quantize(Decimal("0.1"))


class Command(BaseCommand):
    help = "Build deterministic demo data: regions, feeders, premises, meters, customers, accounts, logins."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--meters", type=int, default=200, help="number of premises, each with a meter")
        parser.add_argument("--seed", type=int, default=2026, help="random seed (same seed, same data)")
        parser.add_argument("--if-empty", action="store_true", help="do nothing when master data exists")
        parser.add_argument(
            "--credentials-file", type=Path, default=DEMO_CREDENTIALS_FILE, help="where meter passwords go"
        )
        parser.add_argument(
            "--certificate-meters", type=int, default=3,
            help="meters registered with a client certificate instead of a password (run over TLS)",
        )  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        meters: int = options["meters"]
        if meters < 2:
            raise CommandError("--meters must be at least 2 (alice and bob each get one)")
        path: Path = options["credentials_file"]
        with_certificates = range(
            FIRST_CERTIFICATE_METER, min(meters, FIRST_CERTIFICATE_METER + options["certificate_meters"])
        )
        if Region.objects.exists() or Meter.objects.exists():
            if options["if_empty"]:
                self.stdout.write("Master data exists; not seeding.")
                if not path.exists():
                    self._reissue_credentials(path)
                self._add_certificates(path, with_certificates)
                return
            raise CommandError("master data exists already; seed_demo only fills an empty database")
        rng = random.Random(options["seed"])
        issued = self._seed(meters, rng, with_certificates)
        _write_credentials(
            path, [_row(path, serial, password, certificate) for serial, password, certificate in issued]
        )
        self.stdout.write(self.style.SUCCESS(f"Seeded {meters} premises and meters; meter passwords in {path}"))
        if len(with_certificates):
            self.stdout.write(
                f"{len(with_certificates)} meters use client certificates over TLS (port {settings.MQTT_TLS_PORT}), "
                f"in {path.parent / CERTIFICATES_DIR}"
            )
        self.stdout.write("Logins (portal http://127.0.0.1:8000/):")
        for username, password, role, _ in LOGINS:
            self.stdout.write(f"  {role.value:9} {username:8} {password}")
        self.stdout.write(f"  {'admin':9} {ADMIN_LOGIN[0]:8} {ADMIN_LOGIN[1]}   (/admin/)")

    def _reissue_credentials(self, path: Path) -> None:
        """The file is gone but the demo meters exist: new passwords, set on the broker in one session.
        (Meters that ran on certificates get theirs again in _add_certificates, right after.)"""
        meters = list(
            Meter.objects.filter(serial__regex=DEMO_SERIAL_REGEX, status__in=Meter.ACCEPTING_STATUSES).order_by(
                "serial"
            )
        )
        if not meters:
            return
        issued = services.meters_credentials_reissue(meters=meters)
        # The database has the new hashes; the broker gets the passwords in one session. If the
        # broker refuses, the file is not written and the next start tries again.
        try:
            broker.sync_all(passwords={c.serial: c.mqtt_password or "" for c in issued})
        except broker.BrokerError as exc:
            raise CommandError(f"could not set the demo meters' new passwords on the broker: {exc}") from exc
        _write_credentials(path, [_row(path, c.serial, c.mqtt_password or "", None) for c in issued])
        self.stdout.write(
            self.style.WARNING(f"{path} was missing: issued new credentials for {len(issued)} demo meters into it")
        )

    def _add_certificates(self, path: Path, indexes: range) -> None:
        """A demo seeded before meter certificates: give the same meters certificates (once)."""
        if not path.exists() or not len(indexes):
            return
        with path.open(newline="") as fh:
            rows = [dict(row) for row in csv.DictReader(fh)]
        if any(row.get("certificate") for row in rows) or len(rows) <= indexes.start:
            return
        serials = [rows[i]["serial"] for i in indexes if i < len(rows)]
        by_serial = {m.serial: m for m in Meter.objects.filter(serial__in=serials)}
        for i in indexes:
            meter = by_serial.get(rows[i]["serial"]) if i < len(rows) else None
            if meter is None or not meter.can_connect:
                continue
            with transaction.atomic():
                certificate = services.meter_issue_certificate(meter=meter)
            rows[i] = dict(zip(CSV_HEADER, _row(path, meter.serial, "", certificate), strict=True))
        _write_credentials(path, [[row.get(k) or "" for k in CSV_HEADER] for row in rows])
        self.stdout.write(f"{len(serials)} demo meters now use client certificates over TLS: {', '.join(serials)}")

    @transaction.atomic
    def _seed(
        self, count: int, rng: random.Random, with_certificates: range
    ) -> list[tuple[str, str, certificates.IssuedCertificate | None]]:
        today = local_today()
        tariffs = _tariffs()
        _holidays(range(today.year - 2, today.year + 2))
        feeders: list[tuple[Feeder, float, float]] = []
        for code, name, lat, lon in REGIONS:
            region = Region.objects.create(code=code, name=name)
            for i in range(1, FEEDERS_PER_REGION + 1):
                # Premise n goes to feeder n % 12: this feeder's share of the premises sizes its rating.
                on_feeder = len(range(len(feeders), count, len(REGIONS) * FEEDERS_PER_REGION))
                feeder = Feeder.objects.create(
                    region=region, code=f"{code}-f{i}", name=f"{name} feeder {i}",
                    capacity_kw=_rating_kw(f"{code}-f{i}", on_feeder),
                )  # fmt: skip
                # Each feeder serves a cluster around its substation.
                feeders.append((feeder, lat + rng.uniform(-0.02, 0.02), lon + rng.uniform(-0.025, 0.025)))

        consumers = {}
        for username, password, role, customer_name in LOGINS:
            if role is Role.CONSUMER:
                consumers[username] = services.customer_create(
                    name=str(customer_name), email=f"{username}@example.org", username=username, password=password
                )
            else:
                services.staff_user_create(username=username, password=password, role=role,
                                           email=f"{username}@utility.example")  # fmt: skip
        User.objects.create_superuser(ADMIN_LOGIN[0], "admin@utility.example", ADMIN_LOGIN[1])

        credentials: list[tuple[str, str, certificates.IssuedCertificate | None]] = []
        cycle_days = [1, 1, 1, 1, 8, 15, 22]
        history_start = today.replace(day=1) - dt.timedelta(days=400)
        for n in tqdm(range(count), desc="seeding premises", unit="premise", disable=None):
            feeder, lat, lon = feeders[n % len(feeders)]
            premise = Premise.objects.create(
                feeder=feeder,
                address=f"{rng.randint(1, 180)} {rng.choice(STREETS)}",
                city="Lyon",
                postcode=f"6900{rng.randint(1, 9)}",
                latitude=Decimal(f"{lat + rng.gauss(0, 0.006):.6f}"),
                longitude=Decimal(f"{lon + rng.gauss(0, 0.008):.6f}"),
            )
            has_solar = rng.random() < 0.18
            business = n % 25 == 7
            meter, issued = services.meter_register(
                serial=f"MTR{n + 1:06d}",
                premise=premise,
                install_date=history_start,
                has_solar=has_solar,
                solar_capacity_kw=Decimal(rng.choice(["3.0", "4.5", "6.0"])) if has_solar else None,
                rated_current_a=Decimal("100") if business else Decimal("60"),
                certificate=n in with_certificates,
            )
            services.meter_set_status(meter=meter, status=Meter.Status.ACTIVE)
            credentials.append((issued.serial, issued.mqtt_password or "", issued.certificate))
            if n == 0:
                customer = consumers["alice"]
            elif n == 1:
                customer = consumers["bob"]
            else:
                customer = services.customer_create(
                    name=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                    email=f"customer{n + 1}@example.org",
                )
            tariff = tariffs["business"] if business else tariffs["tou" if rng.random() < 0.35 else "flat"]
            services.account_open(
                number=f"ACC-{n + 1:06d}",
                customer=customer,
                premise=premise,
                tariff=tariff,
                move_in_date=history_start,
                bill_cycle_day=1 if n < 2 else rng.choice(cycle_days),
            )
        return credentials
