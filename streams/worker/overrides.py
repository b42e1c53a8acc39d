"""Writing corrections of triage to ``otklik.overrides`` (the record is :class:`otklik.schemas.overrides.Override`)."""

from __future__ import annotations

from typing import Any

import orjson

from otklik.schemas.overrides import Override, OverrideError


async def submit(bootstrap: str, topic: str, override: Override) -> None:
    """Write the correction to Kafka and wait for the broker's acknowledgement (acks=all)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=override.to_json(), key=override.page.encode())
    finally:
        await producer.stop()


def post(api_url: str, item: str, request: dict[str, Any], token: str, timeout: float = 30.0) -> dict[str, Any]:
    """POST the correction to the worker's API at ``api_url`` with the bearer ``token``; the correction
    it accepted (``by`` is the token's name). Raises :class:`OverrideError` with the worker's answer,
    which never contains the token."""
    import urllib.error
    import urllib.parse
    import urllib.request

    url = f"{api_url}/api/items/{urllib.parse.quote(item, safe=':')}/override"
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, method="POST", data=orjson.dumps(request), headers=headers), timeout=timeout
        ) as resp:
            return orjson.loads(resp.read())["accepted"]
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            message = orjson.loads(body)["error"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            message = body.decode(errors="replace")[:200]
        raise OverrideError(f"the worker at {api_url} answered {exc.code}: {message}") from None
    except OSError as exc:  # refused, unreachable, timed out (URLError is an OSError)
        raise OverrideError(f"cannot reach the worker at {api_url}: {exc}") from None
