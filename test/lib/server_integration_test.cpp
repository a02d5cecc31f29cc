// xmpp::server against a real third-party client: xmpp.js (@xmpp/client,
// tools/testbed/xmppjs.hpp) logs in to our receiving side over ws:// and
// wss://, sends a message and an IQ, and receives the replies.
#include "test_catch.hpp"

#include "testbed/pki.hpp"
#include "testbed/xmppjs.hpp"

#include <xmpp/server.hpp>
#include <xmpp/stanza.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdlib>
#include <mutex>
#include <thread>

using namespace xmpp;
using namespace std::chrono_literals;
using asio::use_awaitable;

namespace {

struct our_server {
    testbed::temp_dir dir;
    testbed::pki pki{dir.path()};
    testbed::pki::leaf leaf = pki.issue("localhost");
    asio::io_context io;
    std::unique_ptr<server> srv;
    std::mutex m;
    std::vector<session> sessions;
    std::vector<std::string> seen; // "from|body" of messages, "from|iq-ns" of IQs
    std::thread th;
    asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);

    our_server() {
        server_options o;
        o.domain = "localhost";
        tls::server_options t;
        t.cert_file = leaf.cert.string();
        t.key_file = leaf.key.string();
        o.tls = tls::context::make_server(t);
        o.allow_plaintext = true; // ws:// on loopback
        o.sasl.scram_lookup = [](std::string user, std::string hash) -> asio::awaitable<std::optional<sasl::scram_secret>> {
            if (user != "alice") co_return std::nullopt;
            boost::system::error_code ec;
            co_return sasl::make_scram_secret(hash, "alice-pass", "", 4096, ec);
        };
        o.sasl.plain_check = [](std::string user, std::string pass, std::string) -> asio::awaitable<bool> {
            co_return user == "alice" && pass == "alice-pass";
        };
        srv = std::make_unique<server>(io.get_executor(), o);
        srv->listen({asio::ip::make_address("127.0.0.1"), 0}, listener_kind::ws);
        srv->listen({asio::ip::make_address("127.0.0.1"), 0}, listener_kind::wss);
        srv->start([this](session s) {
            s.set_handler([this](incoming in) -> asio::awaitable<bool> {
                auto e = in.element();
                if (e.name() == "message") {
                    {
                        std::lock_guard lk(m);
                        seen.push_back(std::string(e.attr("from")) + "|" + e.child("body").text());
                    }
                    xml::element echo("message", xml::ns::client);
                    echo.root().set_attr("to", e.attr("from"));
                    echo.root().set_attr("type", "chat");
                    echo.root().append("body").set_text("echo: " + e.child("body").text());
                    co_await in.async_send(std::move(echo), use_awaitable);
                    co_return true;
                }
                if (iq_view(e).is_request()) {
                    auto payload = iq_view(e).payload();
                    {
                        std::lock_guard lk(m);
                        seen.push_back(std::string(e.attr("from")) + "|" + std::string(payload ? payload.ns() : ""));
                    }
                    if (payload && payload.ns() == "urn:xmpp:ping") {
                        co_await in.async_reply(use_awaitable);
                        co_return true;
                    }
                }
                co_return false;
            });
            std::lock_guard lk(m);
            sessions.push_back(std::move(s));
        });
        th = std::thread([this] { io.run(); });
    }
    ~our_server() {
        srv->stop();
        {
            std::lock_guard lk(m);
            sessions.clear();
        }
        work.reset();
        io.stop();
        th.join();
    }
};

} // namespace

TEST_CASE("xmpp.js logs in to our server over WebSocket, sends a message and an IQ") {
    std::string why;
    if (!testbed::xmppjs_available(&why)) FAIL("xmpp.js cannot run: " << why);
    our_server s;
    for (bool secure : {false, true}) {
        DYNAMIC_SECTION((secure ? "wss" : "ws")) {
            testbed::xmppjs_options o;
            if (secure) {
                // Node trusts the test CA through its own variable.
                ::setenv("NODE_EXTRA_CA_CERTS", s.pki.ca_cert().c_str(), 1);
                o.service = "wss://localhost:" + std::to_string(s.srv->port(1)) + "/xmpp-websocket";
            } else {
                o.service = "ws://127.0.0.1:" + std::to_string(s.srv->port(0)) + "/xmpp-websocket";
            }
            o.domain = "localhost";
            o.username = "alice";
            o.password = "alice-pass";
            o.resource = "js";
            o.message_to = "localhost";
            o.message_body = "hello <&> from xmpp.js";
            o.iq_to = "localhost";
            o.wait = 1;
            o.wait_for = "message";
            o.trace = true;
            auto r = testbed::xmppjs_client(o).wait();
            INFO(r.output);
            REQUIRE(r.exit_status == 0);
            auto online = r.find("online");
            REQUIRE(online);
            CHECK(online->get("jid") == "alice@localhost/js");
            auto iq = r.find("iq_result");
            REQUIRE(iq);
            CHECK(iq->get("id") == "xmppjs-iq-1");
            auto got = r.find("stanza");
            REQUIRE(got);
            CHECK(got->get("name") == "message");
            CHECK(got->get("body") == "echo: hello <&> from xmpp.js");
            std::lock_guard lk(s.m);
            // Our side saw both, 'from' stamped with the bound full JID.
            CHECK(std::find(s.seen.begin(), s.seen.end(), "alice@localhost/js|hello <&> from xmpp.js") != s.seen.end());
            CHECK(std::find(s.seen.begin(), s.seen.end(), "alice@localhost/js|urn:xmpp:ping") != s.seen.end());
        }
    }
    SECTION("a wrong password is refused") {
        testbed::xmppjs_options o;
        o.service = "ws://127.0.0.1:" + std::to_string(s.srv->port(0)) + "/xmpp-websocket";
        o.domain = "localhost";
        o.username = "alice";
        o.password = "wrong";
        auto r = testbed::xmppjs_client(o).wait();
        INFO(r.output);
        CHECK(r.exit_status == 1);
        CHECK_FALSE(r.find("online"));
        auto err = r.find("error");
        REQUIRE(err);
        CHECK(err->get("condition") == "not-authorized");
    }
}
