"""The sandbox's store: links shaped like Wazzup's (``/_sandbox/store/{id}/?filename=…``) that serve real bytes."""

from wazzup_plugin.sandbox.media import pdf, png, store_url


def test_the_store_serves_a_file_by_the_name_in_its_link(sandbox_client):
    photo = sandbox_client.simulate_get("/_sandbox/store/9f1c2d/", params={"filename": "parcel.png"})
    assert (photo.status_code, photo.headers["Content-Type"], photo.content) == (200, "image/png", png())
    invoice = sandbox_client.simulate_get("/_sandbox/store/abc/", params={"filename": "Invoice.PDF"})
    assert invoice.content == pdf()
    voice = sandbox_client.simulate_get("/_sandbox/store/abc/", params={"filename": "voice.wav"})
    assert voice.content.startswith(b"RIFF") and voice.headers["Content-Type"] == "audio/wav"


def test_the_store_has_nothing_else(sandbox_client):
    assert sandbox_client.simulate_get("/_sandbox/store/abc/", params={"filename": "page.html"}).status_code == 404
    assert sandbox_client.simulate_get("/_sandbox/store/abc/").status_code == 404


def test_a_store_link_looks_like_wazzups():
    assert store_url("http://127.0.0.1:9", "photo.png", "f00") == "http://127.0.0.1:9/_sandbox/store/f00/?filename=photo.png"
