"""The emulator checks credentials like the service: 401 before the upgrade, 403 on request."""

from __future__ import annotations

import time

import aiohttp
import pytest
from azure.ai.voicelive.aio import ConnectionError as VoiceLiveConnectionError
from azure.ai.voicelive.aio import connect
from azure.core.credentials import AccessToken, AzureKeyCredential

from emulator_helpers import recv, run, scenario, sdk_session
from voicepipe.emulator import Emulator


class FakeTokenCredential:
    """An async token credential, as azure-identity's would be (Authorization: Bearer …)."""

    def __init__(self, token: str):
        self.token = token
        self.scopes: tuple = ()

    async def get_token(self, *scopes, **kwargs) -> AccessToken:
        self.scopes = scopes
        return AccessToken(self.token, int(time.time()) + 3600)

    async def close(self) -> None:
        pass

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        pass


async def session_created(emulator: Emulator, credential) -> str:
    async with connect(endpoint=emulator.url, credential=credential, model="gpt-realtime") as conn:
        return (await recv(conn))["type"]


def test_any_non_empty_key_or_token_without_a_configured_key():
    async def main():
        async with Emulator(speed=0) as emulator:
            token = FakeTokenCredential("a-token")
            return (
                await session_created(emulator, AzureKeyCredential("whatever")),
                await session_created(emulator, token),
                token.scopes,
            )

    by_key, by_token, scopes = run(main())
    assert by_key == by_token == "session.created"
    assert scopes == ("https://ai.azure.com/.default",)


def test_configured_key_must_match():
    async def main():
        async with Emulator(api_key="right-key", speed=0) as emulator:
            assert await session_created(emulator, AzureKeyCredential("right-key")) == "session.created"
            assert await session_created(emulator, FakeTokenCredential("right-key")) == "session.created"
            with pytest.raises(VoiceLiveConnectionError) as wrong:
                await session_created(emulator, AzureKeyCredential("wrong-key"))
            return str(wrong.value), len(emulator.connections)

    message, accepted = run(main())
    assert "401" in message
    assert "wrong-key" not in message and "right-key" not in message
    assert accepted == 2


def test_missing_credential_and_query_parameter_key():
    async def main():
        async with Emulator(api_key="k1", speed=0) as emulator:
            url = emulator.url + "/voice-live/realtime?api-version=2026-07-15"
            async with aiohttp.ClientSession() as http:
                async with http.get(url) as missing:
                    missing_status, missing_body = missing.status, await missing.text()
                async with http.ws_connect(url + "&api-key=k1") as ws:
                    first = await ws.receive_json(timeout=10)
                async with http.get(emulator.url + "/voice-live/realtime", headers={"api-key": "k1"}) as plain:
                    plain_status = plain.status
                async with http.get(emulator.url + "/elsewhere", headers={"api-key": "k1"}) as elsewhere:
                    elsewhere_status = elsewhere.status
                async with http.post(emulator.url + "/voice-live/realtime", headers={"api-key": "k1"}) as posted:
                    posted_status, allowed = posted.status, posted.headers.get("Allow")
            return missing_status, missing_body, first, plain_status, elsewhere_status, posted_status, allowed

    missing_status, missing_body, first, plain_status, elsewhere_status, posted_status, allowed = run(main())
    assert missing_status == 401 and "api-key" in missing_body
    assert first["type"] == "session.created"
    assert plain_status == 426  # authenticated, but not a WebSocket upgrade
    assert elsewhere_status == 404
    assert posted_status == 405 and allowed == "GET,HEAD"


def test_scenario_can_refuse_with_403_then_accept():
    refuse_first = scenario("faults:\n  - action: http_status\n    status: 403\n    connection: 1\n")

    async def main():
        async with Emulator(refuse_first, speed=0) as emulator:
            with pytest.raises(VoiceLiveConnectionError) as refused:
                await session_created(emulator, AzureKeyCredential("k"))
            second = await session_created(emulator, AzureKeyCredential("k"))
            return str(refused.value), second, [r.number for r in emulator.connections]

    refused, second, numbers = run(main())
    assert "403" in refused
    assert second == "session.created"
    assert numbers == [2]  # the refused attempt was never accepted


def test_scenario_can_refuse_every_connection_with_401():
    async def main():
        async with Emulator(scenario("faults:\n  - action: http_status\n    status: 401\n"), speed=0) as emulator:
            for _ in range(2):
                with pytest.raises(VoiceLiveConnectionError) as refused:
                    async with sdk_session(emulator):
                        pass
                assert "401" in str(refused.value)
            return emulator.connections

    assert run(main()) == []
