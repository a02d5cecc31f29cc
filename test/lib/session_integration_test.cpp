// xmpp::session against real servers: throwaway Prosody 0.12 and ejabberd
// 23.01 on loopback (tools/testbed), the same cases for both.
#include "test_catch.hpp"

#include "testbed/dnsmasq.hpp"
#include "testbed/servers.hpp"

#include <xmpp/net/resolver.hpp>
#include <xmpp/session.hpp>
#include <xmpp/stanza_error.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <functional>
#include <memory>

using namespace xmpp;
using asio::use_awaitable;

namespace {

enum class kind { prosody, ejabberd };

const std::vector<testbed::account> accounts = {{"alice", "alice-pass"}, {"bob", "bob-pass"}, {"carol", "carol-pass"}};

std::unique_ptr<testbed::server> start(kind k, bool tls = true, std::string cert_name = {}) {
    if (k == kind::prosody) {
        testbed::prosody_options o;
        o.tls = tls;
        o.require_encryption = tls;
        o.cert_name = std::move(cert_name);
        o.accounts = accounts;
        return std::make_unique<testbed::prosody_server>(o);
    }
    testbed::ejabberd_options o;
    o.tls = tls;
    o.require_encryption = tls;
    o.cert_name = std::move(cert_name);
    o.accounts = accounts;
    return std::make_unique<testbed::ejabberd_server>(o);
}

session_options options(const testbed::server& srv, const std::string& user) {
    session_options o;
    o.address = jid::parse(user + "@" + srv.domain());
    o.password = user + "-pass";
    o.host = "127.0.0.1";
    o.port = srv.c2s_port();
    o.tls.ca_file = srv.ca_file().string();
    o.tls.use_system_store = false;
    o.step_timeout = std::chrono::seconds(10);
    return o;
}

// Runs `f` with a hard deadline: nothing may hang.
void run(asio::io_context& io, std::function<asio::awaitable<void>()> f, std::chrono::seconds limit = std::chrono::seconds(60)) {
    bool done = false;
    std::exception_ptr error;
    io.restart();
    asio::co_spawn(io, f(), [&](std::exception_ptr e) {
        done = true;
        error = e;
    });
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done && std::chrono::steady_clock::now() < deadline) io.run_for(std::chrono::milliseconds(100));
    REQUIRE(done);
    if (error) std::rethrow_exception(error);
}

// Connects and returns the error (none on success).
boost::system::error_code try_connect(asio::io_context& io, session& s) {
    boost::system::error_code result;
    run(io, [&]() -> asio::awaitable<void> {
        auto [ec] = co_await s.async_connect(asio::as_tuple(use_awaitable));
        result = ec;
    });
    return result;
}

void close(asio::io_context& io, session& s) {
    run(io, [&]() -> asio::awaitable<void> { co_await s.async_close(use_awaitable); });
}

} // namespace

TEST_CASE("session against real servers") {
    for (auto k : {kind::prosody, kind::ejabberd}) {
        const char* name = k == kind::prosody ? "prosody" : "ejabberd";
        // One server per kind for all the cases below (starting ejabberd
        // takes seconds).
        auto srv = start(k);
        asio::io_context io;
        INFO(name);

        { // STARTTLS with every SCRAM variant offered, and PLAIN over TLS
            std::vector<std::string> mechs = {"SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"};
            if (k == kind::ejabberd) mechs.push_back("SCRAM-SHA-512");
            for (auto& m : mechs) {
                CAPTURE(m);
                auto o = options(*srv, "alice");
                o.sasl.mechanisms = {m};
                session s(io.get_executor(), o);
                auto ec = try_connect(io, s);
                INFO(s.last_error().what());
                REQUIRE_FALSE(ec);
                CHECK(s.sasl_mechanism() == m);
                CHECK(has_all(s.state(), session_state::secure | session_state::authenticated | session_state::ready));
                CHECK(s.address().is_full());
                CHECK(s.address().bare().str() == "alice@" + srv->domain());
                // A round trip proves the stream works after the restarts.
                run(io, [&]() -> asio::awaitable<void> {
                    auto r = co_await s.async_send_iq(make_iq(iq_type::get, srv->domain(), "ping", "urn:xmpp:ping"), use_awaitable);
                    CHECK(r.root().attr("type") == "result");
                });
                close(io, s);
            }
        }

        { // default choice and direct TLS (XEP-0368)
            auto o = options(*srv, "bob");
            o.port = srv->direct_tls_port();
            o.direct_tls = true;
            session s(io.get_executor(), o);
            auto ec = try_connect(io, s);
            INFO(s.last_error().what());
            REQUIRE_FALSE(ec);
            // The strongest the server offers under TLS 1.3 without XEP-0440.
            CHECK(s.sasl_mechanism() == (k == kind::prosody ? "SCRAM-SHA-256" : "SCRAM-SHA-512"));
            close(io, s);
        }

        { // -PLUS on TLS 1.2: the default choice, then every variant offered
            auto o = options(*srv, "alice");
            o.tls.max_version = 0x0303;
            session s(io.get_executor(), o);
            auto ec = try_connect(io, s);
            INFO(s.last_error().what());
            REQUIRE_FALSE(ec);
            CHECK(s.sasl_mechanism().ends_with("-PLUS"));
            close(io, s);
            std::vector<std::string> plus = {"SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"};
            if (k == kind::ejabberd) plus.push_back("SCRAM-SHA-512-PLUS");
            for (auto& m : plus) {
                CAPTURE(m);
                auto po = options(*srv, "alice");
                po.tls.max_version = 0x0303;
                po.sasl.mechanisms = {m};
                session ps(io.get_executor(), po);
                auto pec = try_connect(io, ps);
                INFO(ps.last_error().what());
                REQUIRE_FALSE(pec);
                CHECK(ps.sasl_mechanism() == m);
                close(io, ps);
            }
        }

        { // a requested resource is bound as asked (RFC 6120 7.7)
            auto o = options(*srv, "carol");
            o.address = jid::parse("carol@" + srv->domain() + "/desk");
            session s(io.get_executor(), o);
            auto ec = try_connect(io, s);
            INFO(s.last_error().what());
            REQUIRE_FALSE(ec);
            CHECK(s.address().str() == "carol@" + srv->domain() + "/desk");
            close(io, s);
        }

        { // wrong password
            auto o = options(*srv, "alice");
            o.password = "not-the-password";
            session s(io.get_executor(), o);
            auto ec = try_connect(io, s);
            CHECK(ec == sasl::errc::not_authorized);
            CHECK_FALSE(has_all(s.state(), session_state::authenticated));
        }

        { // 1000 concurrent pings, all matched
            session s(io.get_executor(), options(*srv, "alice"));
            REQUIRE_FALSE(try_connect(io, s));
            int ok = 0, failed = 0;
            run(io, [&]() -> asio::awaitable<void> {
                for (int i = 0; i < 1000; ++i) {
                    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
                        auto [ec, r] = co_await s.async_send_iq(make_iq(iq_type::get, srv->domain(), "ping", "urn:xmpp:ping"),
                                                                asio::as_tuple(use_awaitable));
                        (!ec && r.root().attr("type") == "result") ? ++ok : ++failed;
                    }, asio::detached);
                }
                asio::steady_timer t(io);
                for (int i = 0; i < 3000 && ok + failed < 1000; ++i) {
                    t.expires_after(std::chrono::milliseconds(10));
                    co_await t.async_wait(use_awaitable);
                }
            });
            CHECK(ok == 1000);
            CHECK(failed == 0);
            close(io, s);
        }

        { // cancellation, and a forged reply from another JID
            session alice(io.get_executor(), options(*srv, "alice"));
            session bob(io.get_executor(), options(*srv, "bob"));
            session carol(io.get_executor(), options(*srv, "carol"));
            // Bob holds requests; the test decides when he answers.
            std::vector<xml::element> held;
            bob.set_handler([&](incoming in) -> asio::awaitable<bool> {
                if (in.kind() == stanza_kind::iq) {
                    held.push_back(in.release());
                    co_return true;
                }
                co_return false;
            });
            REQUIRE_FALSE(try_connect(io, alice));
            REQUIRE_FALSE(try_connect(io, bob));
            REQUIRE_FALSE(try_connect(io, carol));
            const std::string bob_full(bob.address().str());

            run(io, [&]() -> asio::awaitable<void> {
                asio::steady_timer t(io);
                auto wait_for = [&](auto pred) -> asio::awaitable<void> {
                    for (int i = 0; i < 500 && !pred(); ++i) {
                        t.expires_after(std::chrono::milliseconds(10));
                        co_await t.async_wait(use_awaitable);
                    }
                };
                // 1. Cancel a pending IQ.
                asio::cancellation_signal cancel;
                boost::system::error_code ec1;
                bool done1 = false;
                alice.async_send_iq(make_iq(iq_type::get, bob_full, "query", "urn:test:hold"),
                                    asio::bind_cancellation_slot(cancel.slot(), [&](boost::system::error_code ec, xml::element) {
                                        ec1 = ec;
                                        done1 = true;
                                    }));
                co_await wait_for([&] { return held.size() == 1; });
                REQUIRE(held.size() == 1);
                cancel.emit(asio::cancellation_type::terminal);
                co_await wait_for([&] { return done1; });
                CHECK(ec1 == asio::error::operation_aborted);

                // 2. A reply forged by carol with the right id must not complete it.
                boost::system::error_code ec2;
                xml::element reply2;
                bool done2 = false;
                alice.async_send_iq(make_iq(iq_type::get, bob_full, "query", "urn:test:hold"),
                                    [&](boost::system::error_code ec, xml::element r) {
                                        ec2 = ec;
                                        reply2 = std::move(r);
                                        done2 = true;
                                    });
                co_await wait_for([&] { return held.size() == 2; });
                REQUIRE(held.size() == 2);
                iq_view request(held[1].root());
                xml::element forged("iq", xml::ns::client);
                forged.root().set_attr("type", "result").set_attr("id", request.id()).set_attr("to", request.from());
                forged.root().append("forged", "urn:test");
                co_await carol.async_send(std::move(forged), use_awaitable);
                t.expires_after(std::chrono::milliseconds(500));
                co_await t.async_wait(use_awaitable);
                CHECK_FALSE(done2);
                // Bob's genuine answer completes it.
                auto genuine = make_iq_result(request);
                genuine.root().append("genuine", "urn:test");
                co_await bob.async_send(std::move(genuine), use_awaitable);
                co_await wait_for([&] { return done2; });
                REQUIRE(done2);
                CHECK_FALSE(ec2);
                CHECK(reply2.root().child("genuine", "urn:test"));
                CHECK_FALSE(reply2.root().child("forged", "urn:test"));
            });
            close(io, alice);
            close(io, bob);
            close(io, carol);
        }
    }
}

// SASL ANONYMOUS (RFC 4505) is native: the empty trace ("=" on the wire,
// RFC 6120 6.4.2), never Cyrus's "anonymous@<local host name>".
TEST_CASE("session logs in anonymously to Prosody") {
    testbed::prosody_options po;
    po.authentication = "anonymous";
    po.accounts = {};
    testbed::prosody_server srv(po);
    asio::io_context io;
    auto o = options(srv, "x");
    o.address = jid::parse(srv.domain());
    o.password.clear();
    o.sasl.allow_anonymous = true;
    auto written = std::make_shared<std::string>();
    o.on_write = [written](std::string_view b) { written->append(b); };
    session s(io.get_executor(), o);
    auto ec = try_connect(io, s);
    INFO(s.last_error().what());
    REQUIRE_FALSE(ec);
    CHECK(s.sasl_mechanism() == "ANONYMOUS");
    CHECK(written->find("mechanism='ANONYMOUS'>=</auth>") != std::string::npos);
    CHECK(s.address().is_full());
    CHECK(s.address().domainpart() == srv.domain());
    CHECK_FALSE(s.address().localpart().empty()); // the server made one up
    run(io, [&]() -> asio::awaitable<void> {
        auto r = co_await s.async_send_iq(make_iq(iq_type::get, srv.domain(), "ping", "urn:xmpp:ping"), use_awaitable);
        CHECK(r.root().attr("type") == "result");
    });
    close(io, s);
}

TEST_CASE("session refuses what it must refuse") {
    for (auto k : {kind::prosody, kind::ejabberd}) {
        const char* name = k == kind::prosody ? "prosody" : "ejabberd";
        INFO(name);
        asio::io_context io;
        { // a certificate for another name
            auto srv = start(k, true, "evil.example");
            session s(io.get_executor(), options(*srv, "alice"));
            auto ec = try_connect(io, s);
            CHECK(ec == tls::errc::hostname_mismatch);
        }
        { // a server offering no TLS
            auto srv = start(k, false);
            session s(io.get_executor(), options(*srv, "alice"));
            auto ec = try_connect(io, s);
            CHECK(ec == errc::tls_required);
            CHECK_FALSE(has_all(s.state(), session_state::authenticated));
        }
    }
}

namespace {

// A TCP port on 127.0.0.1 with nobody listening (bound, then released).
unsigned short closed_port() {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, {asio::ip::address_v4::loopback(), 0});
    const auto port = a.local_endpoint().port();
    a.close();
    return port;
}

// Options that leave the choice of host and port to DNS.
session_options srv_options(const testbed::server& srv, const testbed::dnsmasq& dns) {
    session_options o;
    o.address = jid::parse("alice@" + srv.domain());
    o.password = "alice-pass";
    o.tls.ca_file = srv.ca_file().string();
    o.tls.use_system_store = false;
    o.dns.servers = dns.servers();
    o.dns.timeout = std::chrono::milliseconds(1000);
    o.step_timeout = std::chrono::seconds(10);
    return o;
}

// Connects, records whether STARTTLS was used, pings, closes.
struct srv_outcome {
    boost::system::error_code ec;
    bool starttls = false;
    std::string error_text;
};

srv_outcome connect_via_dns(asio::io_context& io, session_options o) {
    auto written = std::make_shared<std::string>();
    o.on_write = [written](std::string_view b) { written->append(b); };
    session s(io.get_executor(), std::move(o));
    srv_outcome out;
    out.ec = try_connect(io, s);
    out.error_text = s.last_error().what();
    out.starttls = written->find("<starttls") != std::string::npos;
    if (!out.ec) {
        run(io, [&]() -> asio::awaitable<void> {
            auto r = co_await s.async_send_iq(make_iq(iq_type::get, std::string(s.address().domainpart()), "ping",
                                                      "urn:xmpp:ping"),
                                              use_awaitable);
            CHECK(r.root().attr("type") == "result");
        });
        close(io, s);
    }
    return out;
}

} // namespace

// RFC 6120 3.2 and XEP-0368 through a real DNS server: the session finds
// the host and port only in SRV records served by dnsmasq on loopback, and
// verifies the certificate against the JID's domain, not the SRV target.
TEST_CASE("session finds the server through DNS SRV records") {
    testbed::prosody_options po;
    po.domain = "xmpp.test";
    po.accounts = accounts;
    testbed::prosody_server srv(po);
    asio::io_context io;
    const std::vector<testbed::dns_host_record> hosts = {{"direct.xmpp.test", "127.0.0.1", ""},
                                                         {"c2s.xmpp.test", "127.0.0.1", ""}};

    { // both services: direct TLS first by priority (XEP-0368 4)
        testbed::dnsmasq_options d;
        d.srv = {{"_xmpps-client._tcp.xmpp.test", "direct.xmpp.test", srv.direct_tls_port(), 0, 0},
                 {"_xmpp-client._tcp.xmpp.test", "c2s.xmpp.test", srv.c2s_port(), 10, 0}};
        d.hosts = hosts;
        testbed::dnsmasq dns(d);
        auto r = connect_via_dns(io, srv_options(srv, dns));
        INFO(r.error_text);
        REQUIRE_FALSE(r.ec);
        CHECK_FALSE(r.starttls);
    }
    { // STARTTLS first by priority
        testbed::dnsmasq_options d;
        d.srv = {{"_xmpps-client._tcp.xmpp.test", "direct.xmpp.test", srv.direct_tls_port(), 10, 0},
                 {"_xmpp-client._tcp.xmpp.test", "c2s.xmpp.test", srv.c2s_port(), 0, 0}};
        d.hosts = hosts;
        testbed::dnsmasq dns(d);
        auto r = connect_via_dns(io, srv_options(srv, dns));
        INFO(r.error_text);
        REQUIRE_FALSE(r.ec);
        CHECK(r.starttls);
    }
    { // the first target is down: the next one is tried (RFC 6120 3.2.1 step 9)
        testbed::dnsmasq_options d;
        d.srv = {{"_xmpps-client._tcp.xmpp.test", "direct.xmpp.test", closed_port(), 0, 0},
                 {"_xmpp-client._tcp.xmpp.test", "c2s.xmpp.test", srv.c2s_port(), 10, 0}};
        d.hosts = hosts;
        testbed::dnsmasq dns(d);
        auto r = connect_via_dns(io, srv_options(srv, dns));
        INFO(r.error_text);
        REQUIRE_FALSE(r.ec);
        CHECK(r.starttls);
    }
    { // the direct-TLS target speaks no TLS (a plain c2s port): its failed
      // handshake gives way to the STARTTLS target (XEP-0368)
        testbed::dnsmasq_options d;
        d.srv = {{"_xmpps-client._tcp.xmpp.test", "direct.xmpp.test", srv.c2s_port(), 0, 0},
                 {"_xmpp-client._tcp.xmpp.test", "c2s.xmpp.test", srv.c2s_port(), 10, 0}};
        d.hosts = hosts;
        testbed::dnsmasq dns(d);
        auto o = srv_options(srv, dns);
        o.step_timeout = std::chrono::seconds(3);
        auto r = connect_via_dns(io, std::move(o));
        INFO(r.error_text);
        REQUIRE_FALSE(r.ec);
        CHECK(r.starttls);
    }
    { // "." for both services: not offered, and no fallback to the domain
        testbed::dnsmasq_options d;
        d.srv = {{"_xmpps-client._tcp.xmpp.test", ".", 0, 0, 0}, {"_xmpp-client._tcp.xmpp.test", ".", 0, 0, 0}};
        testbed::dnsmasq dns(d);
        auto r = connect_via_dns(io, srv_options(srv, dns));
        CHECK(r.ec == net::dns_errc::service_unavailable);
    }
    { // the only target is down: a connection error, not a hang
        testbed::dnsmasq_options d;
        d.srv = {{"_xmpp-client._tcp.xmpp.test", "c2s.xmpp.test", closed_port(), 0, 0}};
        d.hosts = hosts;
        testbed::dnsmasq dns(d);
        auto r = connect_via_dns(io, srv_options(srv, dns));
        CHECK(r.ec == asio::error::connection_refused);
    }
}

// An internationalized domain: the JID holds U-labels, DNS, SNI and the
// certificate the A-labels (RFC 5890, RFC 6125 6.4.2).
TEST_CASE("session with an IDN domain: A-labels for DNS and TLS") {
    testbed::prosody_options po;
    po.domain = "b\u00fccher.test";
    po.cert_name = "xn--bcher-kva.test";
    po.accounts = accounts;
    po.direct_tls = false;
    testbed::prosody_server srv(po);
    asio::io_context io;
    testbed::dnsmasq_options d;
    d.srv = {{"_xmpp-client._tcp.xn--bcher-kva.test", "c2s.xn--bcher-kva.test", srv.c2s_port(), 0, 0}};
    d.hosts = {{"c2s.xn--bcher-kva.test", "127.0.0.1", ""}};
    testbed::dnsmasq dns(d);
    auto r = connect_via_dns(io, srv_options(srv, dns));
    INFO(r.error_text);
    REQUIRE_FALSE(r.ec);
    CHECK(r.starttls);
}

TEST_CASE("session over RFC 7395 WebSocket against real servers") {
    for (auto k : {kind::prosody, kind::ejabberd}) {
        const char* name = k == kind::prosody ? "prosody" : "ejabberd";
        INFO(name);
        std::unique_ptr<testbed::server> srv;
        if (k == kind::prosody) {
            testbed::prosody_options o;
            o.accounts = accounts;
            o.websocket = true;
            srv = std::make_unique<testbed::prosody_server>(o);
        } else {
            testbed::ejabberd_options o;
            o.accounts = accounts;
            o.websocket = true;
            srv = std::make_unique<testbed::ejabberd_server>(o);
        }
        asio::io_context io;
        const std::string ws_url = "ws://127.0.0.1:" + std::to_string(srv->websocket_port()) + "/xmpp-websocket";
        const std::string wss_url = "wss://localhost:" + std::to_string(srv->websocket_tls_port()) + "/xmpp-websocket";

        // alice over wss://, bob over ws:// (SCRAM only: no TLS, no PLAIN).
        auto oa = options(*srv, "alice");
        oa.websocket_url = wss_url;
        auto ob = options(*srv, "bob");
        ob.websocket_url = ws_url;
        ob.allow_plaintext = true;
        ob.address = jid::parse("bob@" + srv->domain() + "/ws");
        session alice(io.get_executor(), oa), bob(io.get_executor(), ob);
        std::vector<std::string> bob_got;
        bob.set_handler([&](incoming in) -> asio::awaitable<bool> {
            if (in.element().name() == "message") bob_got.push_back(in.element().child("body").text());
            co_return true;
        });
        auto ec = try_connect(io, alice);
        INFO(alice.last_error().what());
        REQUIRE_FALSE(ec);
        CHECK(has_all(alice.state(), session_state::secure | session_state::ready));
        CHECK(alice.sasl_mechanism().starts_with("SCRAM-"));
        ec = try_connect(io, bob);
        INFO(bob.last_error().what());
        REQUIRE_FALSE(ec);
        CHECK_FALSE(has_all(bob.state(), session_state::secure));
        CHECK(bob.sasl_mechanism().starts_with("SCRAM-"));
        CHECK(bob.address().str() == "bob@" + srv->domain() + "/ws");

        run(io, [&]() -> asio::awaitable<void> {
            // An IQ round trip on each, then a message from alice to bob.
            for (auto* s : {&alice, &bob}) {
                auto r = co_await s->async_send_iq(make_iq(iq_type::get, srv->domain(), "ping", "urn:xmpp:ping"), use_awaitable);
                CHECK(r.root().attr("type") == "result");
            }
            // Presence first: the servers deliver chat to an available resource.
            co_await bob.async_send(xml::element("presence", xml::ns::client), use_awaitable);
            asio::steady_timer t(io, std::chrono::milliseconds(200));
            co_await t.async_wait(use_awaitable);
            xml::element m("message", xml::ns::client);
            m.root().set_attr("to", std::string(bob.address().str()));
            m.root().set_attr("type", "chat");
            m.root().append("body").set_text("over websocket <&>");
            co_await alice.async_send(std::move(m), use_awaitable);
            for (int i = 0; i < 50 && bob_got.empty(); ++i) {
                t.expires_after(std::chrono::milliseconds(100));
                co_await t.async_wait(use_awaitable);
            }
        });
        REQUIRE(bob_got.size() == 1);
        CHECK(bob_got[0] == "over websocket <&>");
        close(io, alice);
        close(io, bob);
        CHECK(has_all(alice.state(), session_state::input_closed | session_state::output_closed));

        { // ws:// without allow_plaintext is refused before any byte
            auto o = options(*srv, "carol");
            o.websocket_url = ws_url;
            session s(io.get_executor(), o);
            CHECK(try_connect(io, s) == errc::tls_required);
        }
        { // a wrong password over wss://
            auto o = options(*srv, "carol");
            o.websocket_url = wss_url;
            o.password = "wrong";
            session s(io.get_executor(), o);
            CHECK(try_connect(io, s) == sasl::errc::not_authorized);
        }
        { // a wrong path: the HTTP upgrade fails
            auto o = options(*srv, "carol");
            o.websocket_url = "wss://localhost:" + std::to_string(srv->websocket_tls_port()) + "/elsewhere";
            session s(io.get_executor(), o);
            auto e = try_connect(io, s);
            CHECK(e);
            CHECK(e.category() == ws::category());
        }
    }
}
