"""The chat page and its assets are served where the page asks for them."""

import pytest
from fastapi.testclient import TestClient

from services.channels.webchat.channel import WEB_DIR
from services.ingress.main import create_app

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app())  # routes only: the lifespan (Kafka, Redis) is not started


def test_the_page_and_the_assets_it_links_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert 'href="/static/chat.css"' in page.text and 'src="/static/chat.js"' in page.text
    for name, media in (("chat.js", "text/javascript"), ("chat.css", "text/css")):
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200
        assert asset.headers["content-type"].startswith(media)
        assert asset.content == (WEB_DIR / name).read_bytes()


@pytest.mark.parametrize("path", ["/static/index.html", "/static/..%2Fchannel.py", "/static/x"])
def test_nothing_else_on_disk_is_reachable(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404
