"""The chat under attack, over real sockets: each class of hostile input or behaviour
gets its defence, and a bystander keeps being served.

Clients are websockets' sync clients; every receive is bounded.
"""

import json



from chatclient import chat_server, hello, receive, say

WAIT = 3.0


def test_a_lone_surrogate_is_refused_and_public_chat_carries_on(opened):
    with chat_server() as server:
        bystander = opened(server.ws_url)
        hello(bystander, "bia")
        attacker = opened(server.ws_url)
        hello(attacker, "mallory")
        attacker.send('{"type": "say", "text": "\\ud800"}')  # json.loads accepts it
        error = receive(attacker)
        assert error["type"] == "error" and "UTF-8" in error["text"]
        # Nothing was kept: a resume from 0 opens cleanly and replays nothing.
        again = opened(server.ws_url)
        welcome = hello(again, "mallory", resume={"epoch": server.epoch, "offset": 0})
        assert welcome["recovered"] is True
        say(bystander, "ainda funciona")
        for ws in (bystander, attacker, again):
            got = receive(ws)
            assert (got["type"], got["text"], got["offset"]) == ("message", "ainda funciona", 1)
        say(bystander, "/who")
        assert receive(bystander)["text"] == "Online agora: bia, mallory."
