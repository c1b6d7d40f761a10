import pytest

from lib_orchestrator.dispatch.servers import fleet, own_server, parse_servers, same_server_key
from lib_orchestrator.errors import OrchestratorError


def test_one_a_line_or_comma_separated_with_comments_and_credentials():
    text = ("http://192.168.1.20:7860\n\n# the second GPU\n127.0.0.1:7861, https://gpu-box:443/ \n"
            "http://me:s%3Acret@10.0.0.5:7860  # --api-auth\n")
    assert parse_servers(text) == ["http://192.168.1.20:7860", "http://127.0.0.1:7861", "https://gpu-box:443",
                                   "http://me:s%3Acret@10.0.0.5:7860"]


def test_one_server_under_two_addresses_counts_once():
    assert parse_servers("http://localhost:7860\nhttp://127.0.0.1:7860/\nHTTP://LOCALHOST:7860") == [
        "http://localhost:7860"]
    assert same_server_key("http://a:b@Host") == same_server_key("http://host:80/")
    assert same_server_key("http://host:7860") != same_server_key("http://host:7861")


@pytest.mark.parametrize("bad", ["ftp://host:21", "http://", "http://host:port", "http://host:7860/sdapi/v1",
                                 "http://host:99999"])
def test_what_is_no_server_address_is_refused_with_its_line(bad):
    with pytest.raises(OrchestratorError, match=r"Servers, line 2: .* is not a Forge server address") as caught:
        parse_servers("http://ok:7860\n" + bad)
    assert "http://192.168.1.20:7860" in caught.value.hint


def test_this_forge_as_another_process_reaches_it():
    assert own_server("http://127.0.0.1:7862/", 7860, False, None) == "http://127.0.0.1:7862"
    assert own_server(None, None, False, None) == "http://127.0.0.1:7860"
    assert own_server(None, 7861, True, None) == "https://127.0.0.1:7861"
    assert own_server(None, 7861, False, "me:p@ss:w,other:x") == "http://me:p%40ss%3Aw@127.0.0.1:7861"


def test_the_fleet_is_this_forge_then_the_settings_list_with_credentials_from_the_environment():
    here = "http://127.0.0.1:7860"
    assert fleet("http://gpu2:7861, localhost:7860", here, None) == [here, "http://gpu2:7861"]
    assert fleet("http://gpu2:7861", None, "me:pa:ss") == ["http://me:pa%3Ass@gpu2:7861"]
    assert fleet("", None, None) == []


def test_the_settings_list_holds_no_secrets():
    # Forge publishes every setting over /sdapi/v1/options and in its sysinfo
    with pytest.raises(OrchestratorError, match="line 1: no user or password here") as caught:
        fleet("http://me:secret@gpu2:7861", None, None)
    assert "ORCHESTRATOR_SERVER_AUTH=user:password" in caught.value.hint
