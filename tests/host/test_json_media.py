"""Responses are encoded by orjson; what orjson refuses is still answered (host_stub/json_media.py)."""

import json

from host_stub import json_media


def test_non_ascii_text_is_sent_as_utf8_not_escaped():
    assert json_media.dumps({"text": "Привет 📝"}) == '{"text":"Привет 📝"}'.encode()


def test_integer_beyond_64_bits_falls_back_to_the_standard_encoder():
    assert json.loads(json_media.dumps({"n": 2**70})) == {"n": 2**70}


def test_lone_surrogate_is_escaped_instead_of_failing_the_answer():
    body = json_media.dumps({"text": "broken \ud800 emoji"})
    assert body == b'{"text": "broken \\ud800 emoji"}'


def test_api_answers_are_encoded_by_orjson(client):
    health = client.simulate_get("/api/health")
    assert health.status_code == 200 and b'": ' not in health.content
