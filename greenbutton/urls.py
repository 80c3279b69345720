"""Green Button Connect My Data: the OAuth 2 endpoints, the consumer's pages and the ESPI resources."""

from django.urls import path, register_converter
from oauth2_provider import views as oauth

from greenbutton import consent, resources
from greenbutton.oauth import EspiTokenView


class _ReadingTypeId:
    """ReadingType ids are "<meter pk>-<MeterReading number>"."""

    regex = r"[0-9]+-[0-9]+"

    def to_python(self, value: str) -> tuple[int, int]:
        meter, reading = value.split("-")
        return int(meter), int(reading)

    def to_url(self, value: tuple[int, int]) -> str:
        return f"{value[0]}-{value[1]}"


register_converter(_ReadingTypeId, "reading_type")

app_name = "greenbutton"

ESPI = "espi/1_1/resource/"
SUBSCRIPTION = ESPI + "Subscription/<int:subscription_pk>/"
USAGE_POINT = SUBSCRIPTION + "UsagePoint/<int:meter_pk>/"
METER_READING = USAGE_POINT + "MeterReading/<int:reading>/"


urlpatterns = [
    # OAuth 2 (django-oauth-toolkit): authorization code with PKCE, tokens, revocation.
    path("oauth/authorize/", consent.ConsentView.as_view(), name="authorize"),
    path("oauth/token/", EspiTokenView.as_view(), name="token"),
    path("oauth/revoke_token/", oauth.RevokeTokenView.as_view(), name="revoke_token"),
    # The consumer's list of connected applications.
    path("connections/", consent.connections, name="connections"),
    path("connections/<int:subscription_pk>/revoke/", consent.connection_revoke, name="connection_revoke"),
    # ESPI resources (NAESB REQ.21, paths of ESPI 1.1).
    path(ESPI + "Batch/Subscription/<int:subscription_pk>", resources.batch_subscription, name="batch_subscription"),
    path(SUBSCRIPTION.rstrip("/"), resources.usage_points, name="subscription"),
    path(SUBSCRIPTION + "UsagePoint", resources.usage_points, name="usage_points"),
    path(USAGE_POINT.rstrip("/"), resources.usage_point, name="usage_point"),
    path(USAGE_POINT + "MeterReading", resources.meter_readings, name="meter_readings"),
    path(METER_READING.rstrip("/"), resources.meter_reading, name="meter_reading"),
    path(METER_READING + "IntervalBlock", resources.interval_blocks, name="interval_blocks"),
    path(METER_READING + "IntervalBlock/<str:day>", resources.interval_block, name="interval_block"),
    path(USAGE_POINT + "UsageSummary", resources.usage_summaries, name="usage_summaries"),
    path(USAGE_POINT + "UsageSummary/<int:summary_pk>", resources.usage_summary, name="usage_summary"),
    path(ESPI + "ReadingType", resources.reading_types, name="reading_types"),
    path(ESPI + "ReadingType/<reading_type:reading_type>", resources.reading_type, name="reading_type"),
    path(ESPI + "LocalTimeParameters", resources.local_time_parameters, name="local_time_parameters"),
    path(ESPI + "LocalTimeParameters/<int:ltp_pk>", resources.local_time_parameters, name="local_time_parameter"),
]
