// xmpp.js (tools/testbed/xmppjs.hpp) as a third-party WebSocket client
// against a real Prosody: login, bind, a chat message between two xmpp.js
// clients, an IQ ping, and the failure paths (wrong password, unknown
// mechanism, IQ error, timeouts, non-WebSocket URLs); and a login plus ping
// against ejabberd. Server tests point the same fixture at our own server.
#include "test_catch.hpp"

#include "testbed/servers.hpp"
#include "testbed/xmppjs.hpp"

#include <cerrno>
#include <chrono>
#include <signal.h>
#include <string>

using namespace xmpp::testbed;
using namespace std::chrono_literals;

namespace {

/// Fails (never skips) when Node or the npm packages are missing.
void require_xmppjs() {
    std::string why;
    if (!xmppjs_available(&why)) FAIL("xmpp.js cannot run: " << why);
}

prosody_server start_prosody() {
    prosody_options o;
    o.websocket = true;
    o.tls = false; // ws:// only; consider_websocket_secure allows SASL there
    return prosody_server(o);
}

xmppjs_options login(const server& s, const std::string& user, const std::string& password) {
    xmppjs_options o;
    o.service = "ws://127.0.0.1:" + std::to_string(s.websocket_port()) + "/xmpp-websocket";
    o.domain = s.domain();
    o.username = user;
    o.password = password;
    return o;
}

std::string errors_of(const xmppjs_result& r) {
    std::string out;
    for (auto* e : r.all("error")) out += e->get("kind") + ": " + e->get("message") + "\n";
    return out;
}

} // namespace

TEST_CASE("xmppjs: event lines", "[xmppjs]") {
    SECTION("strings with every escape, numbers and literals") {
        auto e = parse_xmppjs_event(
            R"({"event":"stanza", "xml":"<a b=\"c\">\\ \/ \b\f\n\r\t</a>","u":"\u00fc\u20ac\ud83d\ude00","n":-1.5e3,"t":true,"z":null})");
        REQUIRE(e);
        CHECK(e->name == "stanza");
        CHECK(e->get("xml") == "<a b=\"c\">\\ / \b\f\n\r\t</a>");
        CHECK(e->get("u") == "\xC3\xBC\xE2\x82\xAC\xF0\x9F\x98\x80");
        CHECK(e->get("n") == "-1.5e3");
        CHECK(e->get("t") == "true");
        CHECK(e->get("z") == "null");
        CHECK(e->get("absent").empty());
        CHECK(e->fields.count("event") == 0);
    }
    SECTION("raw UTF-8 passes through") {
        auto e = parse_xmppjs_event("{\"event\":\"online\",\"jid\":\"b\xC3\xBC@x/r\"}");
        REQUIRE(e);
        CHECK(e->get("jid") == "b\xC3\xBC@x/r");
    }
    SECTION("anything else is no event") {
        for (const char* bad : {
                 "", "xmppjs: status online", "{}", R"({"jid":"a"})", R"({"event":1})",
                 R"({"event":"x")", R"({"event":"x",})", R"({"event":"x"} trailing)",
                 R"({"event":"x","a":"\q"})", R"({"event":"x","a":"\ud83d"})", R"({"event":"x","a":"\ude00"})",
                 R"({"event":"x","a":"\u12"})", R"({"event":"x","a":{"nested":1}})", R"({"event":"x","a":yes})",
                 "{\"event\":\"x\",\"a\":\"ctl\x01\"}", R"({"event":"x","a":"unterminated})"}) {
            INFO(bad);
            CHECK_FALSE(parse_xmppjs_event(bad));
        }
    }
}

TEST_CASE("xmppjs: missing pieces are reported, not skipped", "[xmppjs]") {
    std::string why;
    xmppjs_options o;
    o.js_dir = "/nonexistent/test/js";
    CHECK_FALSE(xmppjs_available(&why, o));
    CHECK(why.find("xmppjs_client.mjs") != std::string::npos);

    o = {};
    o.node = "/nonexistent/node";
    if (xmppjs_available(nullptr)) { // the node check needs the files in place
        CHECK_FALSE(xmppjs_available(&why, o));
        CHECK(why.find("cannot run /nonexistent/node") != std::string::npos);
    }
}

TEST_CASE("xmppjs: xmpp.js over WebSocket to Prosody", "[xmppjs][prosody]") {
    require_xmppjs();
    auto s = start_prosody();
    INFO(s.log());

    SECTION("login, bind, message to a second xmpp.js, IQ ping") {
        auto bob_opts = login(s, "bob", "bob-pass");
        bob_opts.presence = true;
        bob_opts.wait = 1;
        bob_opts.timeout = 20s;
        xmppjs_client bob(bob_opts);
        auto bob_ready = bob.wait_for("presence_sent", 15s);
        REQUIRE(bob_ready);

        const std::string body = "hello bob <&> \"quoted\" \xC3\xBC";
        auto alice_opts = login(s, "alice", "alice-pass");
        alice_opts.message_to = "bob@" + s.domain();
        alice_opts.message_body = body;
        alice_opts.iq_to = s.domain();
        alice_opts.iq_id = "ping-42";
        auto alice = run_xmppjs(alice_opts);
        INFO(alice.output);
        CHECK(errors_of(alice).empty());
        REQUIRE(alice.exit_status == 0);

        auto* online = alice.find("online");
        REQUIRE(online);
        const std::string& jid = online->get("jid");
        REQUIRE(jid.rfind("alice@localhost/", 0) == 0);
        CHECK(jid.size() > std::string("alice@localhost/").size());
        CHECK(alice.find("message_sent"));
        auto* pong = alice.find("iq_result");
        REQUIRE(pong);
        CHECK(pong->get("id") == "ping-42");
        CHECK(pong->get("from") == "localhost");
        CHECK(pong->get("xml").find("type=\"result\"") != std::string::npos);
        CHECK(alice.find("offline"));

        auto got = bob.wait();
        INFO(got.output);
        CHECK(errors_of(got).empty());
        REQUIRE(got.exit_status == 0);
        const xmppjs_event* msg = nullptr;
        for (auto* e : got.all("stanza"))
            if (e->get("name") == "message") msg = e;
        REQUIRE(msg);
        CHECK(msg->get("body") == body);
        CHECK(msg->get("from") == jid);
        CHECK(msg->get("type") == "chat");
        auto* bob_online = got.find("online");
        REQUIRE(bob_online);
        CHECK(bob_online->get("jid").rfind("bob@localhost/", 0) == 0);
    }

    SECTION("a forced mechanism is the one used") {
        for (const char* mech : {"PLAIN", "SCRAM-SHA-1"}) {
            auto o = login(s, "alice", "alice-pass");
            o.mechanism = mech;
            o.trace = true;
            auto r = run_xmppjs(o);
            INFO(mech << "\n" << r.output);
            CHECK(r.exit_status == 0);
            CHECK(r.find("online"));
            CHECK(r.output.find(std::string("mechanism=\"") + mech + "\"") != std::string::npos);
        }
    }

    SECTION("wrong password: not-authorized, exit 1, never online") {
        auto r = run_xmppjs(login(s, "alice", "wrong"));
        INFO(r.output);
        CHECK(r.exit_status == 1);
        CHECK_FALSE(r.killed);
        CHECK_FALSE(r.find("online"));
        auto* err = r.find("error");
        REQUIRE(err);
        CHECK(err->get("kind") == "sasl");
        CHECK(err->get("condition") == "not-authorized");
    }

    SECTION("a mechanism the server does not offer") {
        auto o = login(s, "alice", "alice-pass");
        o.mechanism = "ANONYMOUS";
        auto r = run_xmppjs(o);
        INFO(r.output);
        CHECK(r.exit_status == 1);
        CHECK_FALSE(r.find("online"));
        auto* err = r.find("error");
        REQUIRE(err);
        CHECK(err->get("kind") == "sasl");
        CHECK(err->get("message").find("ANONYMOUS not available") != std::string::npos);
    }

    SECTION("an IQ error reply fails the run unless allowed") {
        auto o = login(s, "alice", "alice-pass");
        o.iq_to = s.domain();
        o.iq_payload = "<query xmlns='urn:example:nothing'/>";
        auto r = run_xmppjs(o);
        INFO(r.output);
        CHECK(r.exit_status == 1);
        auto* e = r.find("iq_error");
        REQUIRE(e);
        CHECK(e->get("id") == "xmppjs-iq-1");
        CHECK(e->get("condition") == "service-unavailable");
        CHECK_FALSE(r.find("iq_result"));

        o.iq_error_ok = true;
        auto ok = run_xmppjs(o);
        INFO(ok.output);
        CHECK(ok.exit_status == 0);
        CHECK(ok.find("iq_error"));
    }

    SECTION("waiting for a message nobody sends: the script's timeout") {
        auto o = login(s, "bob", "bob-pass");
        o.wait = 1;
        o.timeout = 5s; // the whole run: login included, on a busy machine too
        xmppjs_client c(o);
        CHECK(c.wait_for("online", 5s));
        auto r = c.wait();
        INFO(r.output);
        CHECK(r.exit_status == 2);
        CHECK_FALSE(r.killed);
        auto* err = r.find("error");
        REQUIRE(err);
        CHECK(err->get("kind") == "timeout");
        CHECK(err->get("message").find("0/1 message") != std::string::npos);
    }

    SECTION("a script that outlives the fixture's deadline is killed by pid") {
        auto o = login(s, "bob", "bob-pass");
        o.wait = 1;
        o.timeout = 1000ms;
        o.kill_grace = 500ms;
        o.extra_args = {"--timeout", "60000"}; // the last one wins: the script would wait 60 s
        xmppjs_client c(o);
        const pid_t pid = c.pid();
        REQUIRE(pid > 0);
        auto t0 = std::chrono::steady_clock::now();
        auto r = c.wait();
        auto took = std::chrono::steady_clock::now() - t0;
        INFO(r.output);
        CHECK(r.killed);
        CHECK(r.exit_status == -1);
        CHECK(took < 5s);
        CHECK(::kill(pid, 0) == -1);
        CHECK(errno == ESRCH);
    }

    SECTION("only WebSocket URLs are accepted") {
        for (std::string url : {"xmpp://127.0.0.1:" + std::to_string(s.c2s_port()), std::string("localhost"),
                                "http://127.0.0.1:" + std::to_string(s.websocket_port()) + "/xmpp-websocket"}) {
            auto o = login(s, "alice", "alice-pass");
            o.service = url;
            auto r = run_xmppjs(o);
            INFO(url << "\n" << r.output);
            CHECK(r.exit_status == 64);
            CHECK_FALSE(r.find("online"));
            auto* err = r.find("error");
            REQUIRE(err);
            CHECK(err->get("kind") == "usage");
        }
    }
}

TEST_CASE("xmppjs: xmpp.js over WebSocket to ejabberd", "[xmppjs][ejabberd]") {
    require_xmppjs();
    ejabberd_options eo;
    eo.websocket = true;
    eo.tls = false;
    ejabberd_server s(eo);
    INFO(s.log());
    auto o = login(s, "alice", "alice-pass");
    o.iq_to = s.domain();
    o.trace = true;
    auto r = run_xmppjs(o);
    INFO(r.output);
    CHECK(errors_of(r).empty());
    REQUIRE(r.exit_status == 0);
    auto* online = r.find("online");
    REQUIRE(online);
    CHECK(online->get("jid").rfind("alice@localhost/", 0) == 0);
    auto* pong = r.find("iq_result");
    REQUIRE(pong);
    CHECK(pong->get("id") == "xmppjs-iq-1");
}
