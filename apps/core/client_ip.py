"""The client's address, as every per-IP limit sees it."""

from typing import Any


def client_ip(request: Any) -> str:
    """REMOTE_ADDR, or with TRUSTED_PROXY_COUNT = n > 0 the n-th address from the right of
    X-Forwarded-For, the one the nearest trusted proxy saw; anything further left was written by
    the client and is never trusted. DRF's throttles use this rule; the admin login lockout
    (django-axes, AXES_CLIENT_IP_CALLABLE) calls this function so both agree.
    """
    # Imported here: axes loads this module while a login is handled, and DRF's modules read
    # its settings at import, which import apps.core.api, which imports DRF.
    from rest_framework.throttling import BaseThrottle

    return BaseThrottle().get_ident(request)
