"""The chat window route tells a refused key (401) from a key not allowed there (403, a Sidecar key; reference §1)."""


def iframe(client, auth, chat_id):
    return client.simulate_get(f"/api/chats/{chat_id}/wazzup24/info", params={"iframe": 1}, headers=auth)


def test_iframe_forbidden_says_the_key_is_not_allowed_not_refused(client, auth, make_wazzup_chat, wazzup_api,
                                                                  wazzup_url):
    chat = make_wazzup_chat()
    wazzup_api.post(f"{wazzup_url}/v3/iframe", status=403)
    result = iframe(client, auth, chat)
    assert (result.status_code, result.json["code"]) == (502, "wazzup_iframe_failed")
    message = result.json["message"]
    assert "does not allow" in message and "403" in message and "Sidecar" in message
    assert "refused" not in message


def test_iframe_unauthorized_says_the_key_was_refused(client, auth, make_wazzup_chat, wazzup_api, wazzup_url):
    chat = make_wazzup_chat()
    wazzup_api.post(f"{wazzup_url}/v3/iframe", status=401)
    message = iframe(client, auth, chat).json["message"]
    assert "refused the helpdesk's API key" in message and "WAZZUP24_API_KEY" in message
