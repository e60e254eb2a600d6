"""The image-upload gallery script (``fixtures/scripts/rawhttp_image``), tested with the
plugin's fixtures only: a multipart PNG upload is answered with the picture's size."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from modelstore.testing import ScoringClient, ScoringClientFactory

FIXTURES = Path(__file__).parent.parent / "fixtures"
SCRIPT = FIXTURES / "scripts" / "rawhttp_image" / "score.py"
PICTURE = FIXTURES / "images" / "tiny.png"


@pytest.fixture
def client(scoring_client: ScoringClientFactory) -> ScoringClient:
    return scoring_client(SCRIPT)


def test_an_uploaded_png_is_answered_with_its_size(client: ScoringClient) -> None:
    with Image.open(PICTURE) as picture:
        width, height = picture.size
    response = client.post(files={"image": ("tiny.png", PICTURE.read_bytes(), "image/png")})
    assert response.status_code == 200
    assert response.json() == [width, height]
    assert response.headers["Content-Type"] == "application/json"


def test_an_open_file_can_be_uploaded_as_requests_does(client: ScoringClient) -> None:
    with open(PICTURE, "rb") as upload:
        response = client.post(files={"image": upload})
    assert response.json() == list(Image.open(PICTURE).size)


def test_an_upload_in_the_wrong_field_is_a_400(client: ScoringClient) -> None:
    response = client.post(files={"picture": ("tiny.png", PICTURE.read_bytes())})
    assert response.status_code == 400
    assert response.json() == {"error": "send the picture as a multipart form field named 'image'"}


def test_get_answers_with_the_path_and_query(client: ScoringClient) -> None:
    response = client.get(params={"size": "small"})
    assert (response.status_code, response.text) == (200, "/score?size=small")
