"""What a failed answer says, in words a person can act on.

An :class:`~syncd.http.errors.ApiError` quotes at most :data:`EXCERPT`
characters of the server's error body on one line -- what makes a failure
diagnosable -- and, for JSON:API servers, each of its ``errors[]`` as
``"422 detail (pointer)"``. Never a header, a token or a request body.
"""

from __future__ import annotations

import httpx

from syncd.http.errors import ApiError, RequestContext

EXCERPT = 300
"""Characters of an error body quoted in an error or a log event."""


def excerpt(response: httpx.Response) -> str:
    try:
        text = response.text
    except (UnicodeDecodeError, LookupError):
        return "<undecodable body>"
    return " ".join(text.split())[:EXCERPT]


def api_error(response: httpx.Response, context: RequestContext) -> ApiError:
    details = jsonapi_details(response)
    summary = details[0] if details else excerpt(response)
    return ApiError(
        f"{response.status_code} {summary}".rstrip(),
        status=response.status_code,
        body=excerpt(response),
        details=details,
        context=context,
    )


def jsonapi_details(response: httpx.Response) -> tuple[str, ...]:
    """JSON:API ``errors[]`` as ``"422 detail (pointer)"`` (seed brief catalog §7.1)."""
    try:
        document = response.json()
    except ValueError:
        return ()
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list):
        return ()
    details = []
    for error in errors[:10]:
        if not isinstance(error, dict):
            continue
        text = str(error.get("detail") or error.get("title") or "").strip()
        source = error.get("source")
        pointer = source.get("pointer") if isinstance(source, dict) else None
        status = str(error.get("status") or "").strip()
        line = " ".join(part for part in (status, text) if part)
        if pointer:
            line += f" ({pointer})"
        if line:
            details.append(line[:EXCERPT])
    return tuple(details)
