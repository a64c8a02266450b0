"""A disabled or uninstalled plugin leaves its chats readable, shown as an unknown type."""

import falcon.testing


def test_chats_of_a_disabled_plugin_stay_readable_as_an_unknown_type(build_app, pm_with, make_chat, make_message,
                                                                     auth):
    chat_id = make_chat(type="wazzup", title="Customer", phone="79990001122")
    make_message(chat_id, text="still here")
    client = falcon.testing.TestClient(build_app(pm_with(wazzup=False)))

    listed = client.simulate_get("/api/chats", headers=auth).json["items"]
    assert [(c["id"], c["type"], c["title"]) for c in listed] == [(chat_id, "wazzup", "Customer")]
    assert "wazzup_chat_id" not in listed[0]  # the plugin's fields went with the plugin
    types = client.simulate_get("/api/chat-types", headers=auth).json
    assert "wazzup" not in [t["name"] for t in types["items"]]
    assert types["unknown"]["name"] == "unknown" and types["unknown"]["icon"]
    messages = client.simulate_get(f"/api/chats/{chat_id}/messages", headers=auth).json["items"]
    assert [m["text"] for m in messages] == ["still here"]


def test_a_disabled_plugin_takes_its_routes_and_commands_with_it(build_app, pm_with, auth):
    from host_stub.cli import build_cli

    app = build_app(pm_with(wazzup=False))
    assert not [r for r in app.helpdesk.registrations.routes if r.plugin == "wazzup24"]
    assert "wazzup24" not in build_cli(pm_with(wazzup=False)).commands
    assert falcon.testing.TestClient(app).simulate_get("/api/plugins", headers=auth).json == {"items": []}


def test_enabled_plugins_are_listed_with_their_versions(client, auth):
    import wazzup_plugin

    assert client.simulate_get("/api/plugins", headers=auth).json["items"] == [
        {"name": "wazzup24", "version": wazzup_plugin.__version__, "contract": "1",
         "summary": "WhatsApp and other messengers through Wazzup24 API v3"}]
