"""The CORS gallery script (``fixtures/scripts/cors``), tested with the plugin's fixtures only:
the script sets the CORS headers itself through ``AMLResponse``."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelstore.testing import ScoringClient, ScoringClientFactory

SCRIPT = Path(__file__).parent.parent / "fixtures" / "scripts" / "cors" / "score.py"
ORIGIN = "https://www.example.com"


@pytest.fixture
def client(scoring_client: ScoringClientFactory) -> ScoringClient:
    return scoring_client(SCRIPT)


def test_a_post_is_echoed_with_the_allowed_origin(client: ScoringClient) -> None:
    response = client.post(data='{"data": [1, 2]}', headers={"Origin": "https://elsewhere.example"})
    assert response.status_code == 200
    assert response.content == b'{"data": [1, 2]}'
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_a_get_carries_the_allowed_origin_too(client: ScoringClient) -> None:
    response = client.get(params={"q": "1"})
    assert response.text == "/score?q=1"
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_the_preflight_lists_methods_as_separate_header_lines_as_azure_does(
    client: ScoringClient,
) -> None:
    response = client.options(headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert response.status_code == 200
    assert response.headers.getlist("Access-Control-Allow-Methods") == ["GET", "POST"]
    assert response.headers["Access-Control-Allow-Headers"] == "Content-Type"
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_other_methods_are_refused_by_the_script(client: ScoringClient) -> None:
    response = client.request("HEAD")
    assert response.status_code == 405
    assert "Access-Control-Allow-Origin" not in response.headers
