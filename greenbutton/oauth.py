"""The OAuth 2 side of Green Button Connect: the validator django-oauth-toolkit uses, and token checks.

Tokens are django-oauth-toolkit's, checked against the database on every request: a deleted
(revoked) or expired token is refused at once, with 401 and a Bearer challenge.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from oauth2_provider.oauth2_backends import get_oauthlib_core
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.views import TokenView

from greenbutton import selectors
from greenbutton.documents import Access


def error_response(status: int, code: str, message: str, *, field: str | None = None) -> JsonResponse:
    """The API's one error shape: {"error": {"code", "message", "field"}}."""
    response = JsonResponse({"error": {"code": code, "message": message, "field": field}}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = f'Bearer realm="espi", error="invalid_token", error_description="{message}"'
    return response


class EspiOAuth2Validator(OAuth2Validator):
    """OAUTH2_PROVIDER["OAUTH2_VALIDATOR_CLASS"]: a token response also names the subscription's batch
    (`resourceURI`, as ESPI's token responses do), so the client knows where its data is."""

    def save_bearer_token(self, token: dict[str, Any], request: Any, *args: Any, **kwargs: Any) -> None:
        super().save_bearer_token(token, request, *args, **kwargs)
        subscription = selectors.active_subscription(
            user_id=getattr(request.user, "pk", None), application_id=getattr(request.client, "pk", None)
        )
        if subscription is not None:
            # A path here; EspiTokenView makes it absolute with the host Django validated.
            token["resourceURI"] = f"/espi/1_1/resource/Batch/Subscription/{subscription.pk}"


class EspiTokenView(TokenView):
    """The toolkit's token endpoint, with `resourceURI` made absolute for the host the client called."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response: HttpResponse = super().post(request, *args, **kwargs)
        if response.status_code == 200 and response.get("Content-Type", "").startswith("application/json"):
            body = json.loads(response.content)
            if isinstance(body.get("resourceURI"), str) and body["resourceURI"].startswith("/"):
                body["resourceURI"] = request.build_absolute_uri(body["resourceURI"])
                response.content = json.dumps(body).encode()
        return response


ResourceView = Callable[..., HttpResponse]


def espi_token_required(view: ResourceView) -> ResourceView:
    """A valid Connect token, whose subscription is still active; the view gets its `Access`."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        valid, oauth_request = get_oauthlib_core().verify_request(request, scopes=[])
        if not valid:
            return error_response(401, "authentication_failed", "A valid, unexpired access token is required.")
        token = oauth_request.access_token
        subscription = selectors.active_subscription(user_id=token.user_id, application_id=token.application_id)
        if subscription is None:
            return error_response(401, "authentication_failed", "This token's subscription was revoked.")
        return view(request, Access.of(subscription), *args, **kwargs)

    return wrapper
