// xmpp::server against our own client (xmpp::session) and against raw peers
// written by hand on loopback sockets, all in one io_context: logins over
// TCP + STARTTLS, direct TLS, ws:// and wss:// with every SASL mechanism,
// bind conflicts, wrong passwords, bad framing, stream errors both ways,
// and the limits that cut bad clients off.
#include "test_catch.hpp"

#include "testbed/pki.hpp"

#include <xmpp/server.hpp>
#include <xmpp/session.hpp>
#include <xmpp/stanza.hpp>
#include <xmpp/stanza_error.hpp>
#include <xmpp/stream_error.hpp>
#include <xmpp/websocket.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include <functional>
#include <map>
#include <random>

#include <unistd.h>

using namespace xmpp;
using asio::ip::tcp;
using asio::use_awaitable;
using namespace std::chrono_literals;

namespace {

const auto loopback = asio::ip::make_address("127.0.0.1");

struct fixture {
    testbed::temp_dir dir;
    testbed::pki pki{dir.path()};
    testbed::pki::leaf leaf = pki.issue("localhost");
    asio::io_context io;
    std::map<std::string, std::string> passwords{{"alice", "alice-pass"}, {"bob", "bob-pass"}};
    std::vector<session> sessions; // what the server handed over, kept alive
    std::vector<error_info> server_closed; // on_closed of server-side sessions
    int lookups = 0;

    tls::context server_ctx() {
        tls::server_options o;
        o.cert_file = leaf.cert.string();
        o.key_file = leaf.key.string();
        return tls::context::make_server(o);
    }

    server_options server_opts() {
        server_options o;
        o.domain = "localhost";
        o.tls = server_ctx();
        o.allow_plaintext = true; // ws:// on loopback; TCP still offers STARTTLS
        o.sasl.scram_lookup = [this](std::string user, std::string hash) -> asio::awaitable<std::optional<sasl::scram_secret>> {
            ++lookups;
            auto it = passwords.find(user);
            if (it == passwords.end()) co_return std::nullopt;
            boost::system::error_code ec;
            auto secret = sasl::make_scram_secret(hash, it->second, "salt-of-" + user, 4096, ec);
            REQUIRE_FALSE(ec);
            co_return secret;
        };
        o.sasl.plain_check = [this](std::string user, std::string pass, std::string) -> asio::awaitable<bool> {
            auto it = passwords.find(user);
            co_return it != passwords.end() && it->second == pass;
        };
        o.sasl.allow_anonymous = true;
        o.handshake_timeout = 5s;
        o.step_timeout = 2s;
        o.session.on_closed = [this](const error_info& e) { server_closed.push_back(e); };
        if (std::getenv("XMPP_TEST_TRACE")) o.session.on_write = [](std::string_view b) { std::fprintf(stderr, "S> %.*s\n", int(b.size()), b.data()); };
        if (std::getenv("XMPP_TEST_TRACE")) o.session.on_read = [](std::string_view b) { std::fprintf(stderr, "S< %.*s\n", int(b.size()), b.data()); };
        return o;
    }

    // A server whose sessions answer pings and echo messages back.
    std::unique_ptr<server> make_server(server_options o) {
        auto srv = std::make_unique<server>(io.get_executor(), std::move(o));
        for (auto k : {listener_kind::tcp, listener_kind::direct_tls, listener_kind::ws, listener_kind::wss})
            srv->listen({loopback, 0}, k);
        srv->start([this](session s) {
            s.set_handler([](incoming in) -> asio::awaitable<bool> {
                auto e = in.element();
                if (e.name() == "iq" && iq_view(e).payload() && iq_view(e).payload().name() == "ping") {
                    co_await in.async_reply(use_awaitable);
                    co_return true;
                }
                if (e.name() == "message") {
                    xml::element echo("message", xml::ns::client);
                    echo.root().set_attr("to", e.attr("from"));
                    echo.root().append("body").set_text("echo: " + e.child("body").text());
                    co_await in.async_send(std::move(echo), use_awaitable);
                    co_return true;
                }
                co_return false;
            });
            sessions.push_back(std::move(s));
        });
        return srv;
    }

    session_options client_opts(const server& srv, listener_kind kind, std::string user = "alice") {
        session_options o;
        o.address = jid::parse(user + "@localhost");
        o.password = passwords.count(user) ? passwords[user] : "nope";
        o.tls.ca_file = pki.ca_cert().string();
        o.tls.use_system_store = false;
        o.step_timeout = 2s;
        o.connect_timeout = 5s;
        o.close_timeout = 500ms;
        switch (kind) {
        case listener_kind::tcp: o.host = "127.0.0.1"; o.port = srv.port(0); break;
        case listener_kind::direct_tls: o.host = "127.0.0.1"; o.port = srv.port(1); o.direct_tls = true; break;
        case listener_kind::ws:
            o.websocket_url = "ws://127.0.0.1:" + std::to_string(srv.port(2)) + "/xmpp-websocket";
            o.allow_plaintext = true;
            break;
        case listener_kind::wss:
            o.websocket_url = "wss://localhost:" + std::to_string(srv.port(3)) + "/xmpp-websocket";
            break;
        }
        return o;
    }

    void run(std::function<asio::awaitable<void>()> f, std::chrono::seconds limit = 20s) {
        io.restart();
        bool done = false;
        std::exception_ptr error;
        asio::co_spawn(io, f(), [&](std::exception_ptr e) {
            done = true;
            error = e;
        });
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (!done && std::chrono::steady_clock::now() < deadline) io.run_for(10ms);
        REQUIRE(done);
        if (error) std::rethrow_exception(error);
    }
};

const char* kind_name(listener_kind k) {
    switch (k) {
    case listener_kind::tcp: return "tcp+starttls";
    case listener_kind::direct_tls: return "direct-tls";
    case listener_kind::ws: return "ws";
    case listener_kind::wss: return "wss";
    }
    return "?";
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(use_awaitable);
}

// --- raw peers -----------------------------------------------------------------

// A plain TCP peer that writes what the test says and collects what it reads.
struct raw_peer {
    tcp::socket sock;
    std::string got;
    bool eof = false;

    explicit raw_peer(asio::io_context& io) : sock(io) {}

    asio::awaitable<void> connect(std::uint16_t port) { co_await sock.async_connect({loopback, port}, use_awaitable); }
    asio::awaitable<void> send(std::string_view s) { co_await asio::async_write(sock, asio::buffer(s), use_awaitable); }

    // Reads until `needle` is in what was read, the peer closes, or `limit`.
    asio::awaitable<bool> read_until(std::string_view needle, std::chrono::milliseconds limit = 3000ms) {
        using namespace asio::experimental::awaitable_operators;
        const auto end = std::chrono::steady_clock::now() + limit;
        while (got.find(needle) == std::string::npos && !eof) {
            const auto left = end - std::chrono::steady_clock::now();
            if (left <= std::chrono::steady_clock::duration::zero()) co_return false;
            char buf[4096];
            asio::steady_timer t(sock.get_executor(), left);
            auto r = co_await (sock.async_read_some(asio::buffer(buf), asio::as_tuple(use_awaitable)) ||
                               t.async_wait(asio::as_tuple(use_awaitable)));
            if (r.index() == 1) co_return false;
            auto [ec, n] = std::get<0>(r);
            got.append(buf, n);
            if (ec) eof = true;
        }
        co_return got.find(needle) != std::string::npos;
    }
    // Waits for the server to close the connection.
    asio::awaitable<bool> wait_closed(std::chrono::milliseconds limit) {
        (void)co_await read_until("\x01\x02 never", limit);
        co_return eof;
    }
};

const std::string client_header =
    "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client'"
    " xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

// RFC 6455 5.2 frames by hand: what a client sends (masked) and reads.
std::string ws_frame(std::uint8_t opcode, std::string_view payload, bool fin = true) {
    std::string f;
    f += static_cast<char>((fin ? 0x80 : 0) | opcode);
    const std::size_t n = payload.size();
    if (n < 126) {
        f += static_cast<char>(0x80 | n);
    } else if (n <= 0xffff) {
        f += static_cast<char>(0x80 | 126);
        f += static_cast<char>(n >> 8);
        f += static_cast<char>(n & 0xff);
    } else {
        f += static_cast<char>(0x80 | 127);
        for (int i = 7; i >= 0; --i) f += static_cast<char>((static_cast<std::uint64_t>(n) >> (8 * i)) & 0xff);
    }
    const char mask[4] = {0x12, 0x34, 0x56, 0x78};
    f.append(mask, 4);
    for (std::size_t i = 0; i < n; ++i) f += static_cast<char>(payload[i] ^ mask[i % 4]);
    return f;
}

// The text messages (and whether a close frame came) in what a server sent.
struct ws_read {
    std::vector<std::string> texts;
    bool closed = false;
};
ws_read parse_frames(std::string_view in) {
    ws_read r;
    std::size_t at = 0;
    while (in.size() - at >= 2) {
        const auto b0 = static_cast<unsigned char>(in[at]), b1 = static_cast<unsigned char>(in[at + 1]);
        std::size_t len = b1 & 0x7f, hdr = 2;
        if (len == 126) {
            if (in.size() - at < 4) break;
            len = (static_cast<unsigned char>(in[at + 2]) << 8) | static_cast<unsigned char>(in[at + 3]);
            hdr = 4;
        } else if (len == 127) {
            break; // not used by these tests
        }
        if (in.size() - at < hdr + len) break;
        const auto op = b0 & 0x0f;
        if (op == 1) r.texts.emplace_back(in.substr(at + hdr, len));
        if (op == 8) r.closed = true;
        at += hdr + len;
    }
    return r;
}

// A hand-written RFC 7395 client on a raw socket.
struct raw_ws : raw_peer {
    using raw_peer::raw_peer;
    std::size_t body_at = 0;

    asio::awaitable<bool> handshake(std::uint16_t port, std::string protocol = "xmpp", std::string path = "/xmpp-websocket") {
        co_await connect(port);
        std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
        if (!protocol.empty()) req += "Sec-WebSocket-Protocol: " + protocol + "\r\n";
        req += "\r\n";
        co_await send(req);
        if (!co_await read_until("\r\n\r\n")) co_return false;
        body_at = got.find("\r\n\r\n") + 4;
        co_return got.starts_with("HTTP/1.1 101");
    }
    asio::awaitable<void> text(std::string_view s) { co_await send(ws_frame(1, s)); }
    ws_read frames() const { return parse_frames(std::string_view(got).substr(body_at)); }
    // Reads until a text message holding `needle` (or a close frame).
    asio::awaitable<bool> until_text(std::string_view needle, std::chrono::milliseconds limit = 3000ms) {
        const auto end = std::chrono::steady_clock::now() + limit;
        for (;;) {
            auto f = frames();
            for (auto& t : f.texts)
                if (t.find(needle) != std::string::npos) co_return true;
            if (f.closed || eof || std::chrono::steady_clock::now() >= end) co_return false;
            const auto before = got.size();
            (void)co_await read_until("\x01\x02 never", 50ms);
            (void)before;
        }
    }
};

const std::string ws_open = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";

// Never co_await inside a Catch macro: GCC 12 also runs the copy of the
// expression in the macro's never-taken branch (a second connect...).

} // namespace

TEST_CASE("server: our client logs in over every transport with every SASL mechanism") {
    fixture fx;
    auto srv = fx.make_server(fx.server_opts());
    struct row {
        listener_kind kind;
        std::string mechanism;
    };
    std::vector<row> rows;
    for (auto k : {listener_kind::tcp, listener_kind::direct_tls, listener_kind::wss})
        for (const char* m : {"SCRAM-SHA-512-PLUS", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-512",
                              "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN", "ANONYMOUS"})
            rows.push_back({k, m});
    // ws:// has no TLS: no -PLUS, and PLAIN is neither offered nor sent.
    for (const char* m : {"SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1", "ANONYMOUS"}) rows.push_back({listener_kind::ws, m});

    for (const auto& r : rows) {
        DYNAMIC_SECTION(kind_name(r.kind) << " " << r.mechanism) {
            fx.run([&]() -> asio::awaitable<void> {
                auto o = fx.client_opts(*srv, r.kind);
                o.sasl.mechanisms = {r.mechanism};
                o.sasl.allow_anonymous = r.mechanism == "ANONYMOUS";
                if (r.mechanism == "ANONYMOUS") o.address = jid::parse("localhost");
                else o.address = jid::parse("alice@localhost/desk");
                session c(fx.io.get_executor(), o);
                std::vector<std::string> bodies;
                c.set_handler([&](incoming in) -> asio::awaitable<bool> {
                    if (in.element().name() != "message") co_return false;
                    bodies.push_back(in.element().child("body").text());
                    co_return true;
                });
                auto [ec] = co_await c.async_connect(asio::as_tuple(use_awaitable));
                INFO(c.last_error().what());
                REQUIRE_FALSE(ec);
                CHECK(c.sasl_mechanism() == r.mechanism);
                if (r.mechanism != "ANONYMOUS") CHECK(c.address().str() == "alice@localhost/desk");
                CHECK(c.address().is_full());
                // The server side holds the same full JID.
                co_await sleep_for(20ms);
                REQUIRE(!fx.sessions.empty());
                auto& mine = fx.sessions.back();
                CHECK(mine.is_received());
                CHECK(mine.peer_address() == c.address());
                CHECK(mine.address().str() == "localhost");
                CHECK(mine.sasl_mechanism() == r.mechanism);
                // An IQ to the server, answered by its handler.
                auto [iq_ec, reply] = co_await c.async_send_iq(make_iq(iq_type::get, "localhost", "ping", "urn:xmpp:ping"),
                                                               asio::as_tuple(use_awaitable));
                CHECK_FALSE(iq_ec);
                CHECK(reply.root().attr("type") == "result");
                // An IQ the server sends to the client: nobody handles it there, so
                // the client answers service-unavailable, matched by the server.
                auto [back_ec, back] = co_await mine.async_send_iq(make_iq(iq_type::get, "", "query", "urn:x-test"),
                                                                   asio::as_tuple(use_awaitable));
                CHECK(back_ec == stanza_errc::service_unavailable);
                // A message echoed back with the stamped 'from'.
                xml::element m("message", xml::ns::client);
                m.root().set_attr("to", "localhost");
                m.root().append("body").set_text("hi");
                co_await c.async_send(std::move(m), use_awaitable);
                for (int i = 0; i < 100 && bodies.empty(); ++i) co_await sleep_for(10ms);
                REQUIRE(bodies.size() == 1);
                CHECK(bodies[0] == "echo: hi");
                co_await c.async_close(use_awaitable);
                co_await sleep_for(20ms);
                REQUIRE(!fx.server_closed.empty());
                CHECK(fx.server_closed.back().code == errc::peer_closed);
                fx.sessions.clear();
            });
        }
    }
}

TEST_CASE("server: a burst of requests over a WebSocket is answered in a few writes, not one per reply") {
    // A WebSocket read ends at each message's end, so a short read does not
    // mean the input is drained: the replies to requests already decoded
    // wait for the burst's end (or 1.5 KB), as over TCP.
    fixture fx;
    auto so = fx.server_opts();
    bool counting = false;
    std::size_t server_writes = 0, server_messages = 0;
    so.session.on_write = [&](std::string_view b) {
        if (!counting) return;
        ++server_writes;
        for (auto at = b.find("<iq"); at != std::string_view::npos; at = b.find("<iq", at + 1)) ++server_messages;
    };
    auto srv = fx.make_server(so);
    for (auto kind : {listener_kind::ws, listener_kind::wss}) {
        DYNAMIC_SECTION(kind_name(kind)) {
            fx.run([&]() -> asio::awaitable<void> {
                session c(fx.io.get_executor(), fx.client_opts(*srv, kind));
                auto [ec] = co_await c.async_connect(asio::as_tuple(use_awaitable));
                REQUIRE_FALSE(ec);
                counting = true;
                constexpr int n = 40;
                int results = 0;
                // Started together: the client's writer takes them in (at most) two writes.
                for (int i = 0; i < n; ++i)
                    asio::co_spawn(fx.io, [&]() -> asio::awaitable<void> {
                        auto [e, r] = co_await c.async_send_iq(make_iq(iq_type::get, "localhost", "ping", "urn:xmpp:ping"),
                                                               asio::as_tuple(use_awaitable));
                        if (!e && r.root().attr("type") == "result") ++results;
                    }, asio::detached);
                for (int i = 0; i < 300 && results < n; ++i) co_await sleep_for(10ms);
                counting = false;
                CHECK(results == n);
                CHECK(server_messages == static_cast<std::size_t>(n));
                // ~4 KB of results: a write per 1.5 KB, and the burst's end.
                INFO("server writes: " << server_writes);
                CHECK(server_writes <= 6);
                co_await c.async_close(use_awaitable);
                fx.sessions.clear();
            });
        }
    }
}

TEST_CASE("server: inline handlers answer at once, decline, throw, release, defer and replace themselves") {
    fixture fx;
    std::vector<std::string> calls; // which handler saw which payload
    auto srv = std::make_unique<server>(fx.io.get_executor(), fx.server_opts());
    for (auto k : {listener_kind::tcp, listener_kind::direct_tls, listener_kind::ws, listener_kind::wss})
        srv->listen({loopback, 0}, k);
    srv->start([&](session s) {
        s.set_inline_handler([&](incoming& in) -> bool {
            auto e = in.element();
            auto payload = iq_view(e).payload();
            const std::string what = payload ? std::string(payload.name()) : std::string(e.name());
            calls.push_back("first:" + what);
            if (what == "ping") {
                in.async_reply(asio::detached); // no coroutine anywhere
                return true;
            }
            if (what == "throw") throw std::runtime_error("handler bug");
            if (what == "release") {
                auto tree = in.release(); // the automatic answer still knows the request
                return tree.root().name() != "iq";
            }
            if (what == "later") {
                // Moved into a coroutine of its own: the reader goes on meanwhile.
                asio::co_spawn(fx.io, [in = std::move(in)]() mutable -> asio::awaitable<void> {
                    co_await sleep_for(50ms);
                    xml::element p("later", "urn:x-test");
                    co_await in.async_reply(std::move(p), use_awaitable);
                }, asio::detached);
                return true;
            }
            if (what == "notify") {
                // Detached sends store no completion; the message goes before the result.
                in.async_send(make_message(in.element().attr("from"), "note"), asio::detached);
                in.async_reply(asio::detached);
                return true;
            }
            if (what == "message") in.async_reply(asio::detached); // not an IQ request: sends nothing
            if (what == "swap") {
                // Replaced from inside its own call: the next element goes to the new one.
                fx.sessions.back().set_inline_handler([&](incoming& in2) {
                    calls.push_back("second:" + std::string(iq_view(in2.element()).payload().name()));
                    in2.async_reply(asio::detached);
                    return true;
                });
                in.async_reply(asio::detached);
                return true;
            }
            return false; // "decline", and <message type='get'/>
        });
        fx.sessions.push_back(std::move(s));
    });
    for (auto kind : {listener_kind::tcp, listener_kind::ws}) {
        DYNAMIC_SECTION(kind_name(kind)) {
            calls.clear();
            fx.run([&]() -> asio::awaitable<void> {
                session c(fx.io.get_executor(), fx.client_opts(*srv, kind));
                std::vector<std::string> client_saw; // type and body of what reaches the client's handler
                c.set_handler([&](incoming in) -> asio::awaitable<bool> {
                    client_saw.push_back(std::string(in.element().attr("type")) + ":" + in.element().child("body").text());
                    co_return true;
                });
                auto [ec] = co_await c.async_connect(asio::as_tuple(use_awaitable));
                REQUIRE_FALSE(ec);
                auto ask = [&](const char* what) -> asio::awaitable<std::pair<boost::system::error_code, xml::element>> {
                    auto [e, r] = co_await c.async_send_iq(make_iq(iq_type::get, "localhost", what, "urn:x-test"),
                                                           2s, asio::as_tuple(use_awaitable));
                    co_return std::pair{e, std::move(r)};
                };
                auto ping = co_await ask("ping");
                CHECK_FALSE(ping.first);
                CHECK(ping.second.root().attr("type") == "result");
                auto decline = co_await ask("decline");
                CHECK(decline.first == stanza_errc::service_unavailable);
                auto thrown = co_await ask("throw");
                CHECK(thrown.first == stanza_errc::internal_server_error);
                auto released = co_await ask("release");
                CHECK(released.first == stanza_errc::service_unavailable);
                // The deferred answer comes after a ping sent behind it.
                std::pair<boost::system::error_code, xml::element> later;
                bool later_done = false;
                asio::co_spawn(fx.io, [&]() -> asio::awaitable<void> {
                    later = co_await ask("later");
                    later_done = true;
                }, asio::detached);
                co_await sleep_for(5ms);
                auto ping2 = co_await ask("ping");
                CHECK_FALSE(ping2.first);
                CHECK_FALSE(later_done);
                for (int i = 0; i < 100 && !later_done; ++i) co_await sleep_for(10ms);
                REQUIRE(later_done);
                CHECK_FALSE(later.first);
                CHECK(later.second.root().child("later", "urn:x-test"));
                // Not an IQ: declining a <message type='get'/> sends nothing back
                // (only IQ get and set are answered automatically).
                xml::element m("message", xml::ns::client);
                m.root().set_attr("type", "get");
                m.root().set_attr("to", "localhost");
                c.async_send(std::move(m), asio::detached); // goes out all the same, before the next IQ
                auto notify = co_await ask("notify");
                CHECK_FALSE(notify.first);
                CHECK(client_saw == std::vector<std::string>{"chat:note"});
                auto swap = co_await ask("swap");
                CHECK_FALSE(swap.first);
                auto after = co_await ask("after-swap");
                CHECK_FALSE(after.first);
                co_await sleep_for(50ms);
                CHECK(client_saw == std::vector<std::string>{"chat:note"}); // nothing for the message
                co_await c.async_close(use_awaitable);
            });
            CHECK(calls == std::vector<std::string>{"first:ping", "first:decline", "first:throw", "first:release",
                                                    "first:later", "first:ping", "first:message", "first:notify",
                                                    "first:swap", "second:after-swap"});
            fx.sessions.clear();
        }
    }
}

TEST_CASE("server: an unhandled <message type='get'/> gets no error reply from a coroutine handler either") {
    fixture fx;
    auto srv = fx.make_server(fx.server_opts()); // its handler declines everything but pings and messages...
    fx.run([&]() -> asio::awaitable<void> {
        session c(fx.io.get_executor(), fx.client_opts(*srv, listener_kind::tcp));
        std::vector<std::string> client_saw;
        c.set_handler([&](incoming in) -> asio::awaitable<bool> {
            client_saw.emplace_back(in.element().attr("type"));
            co_return true;
        });
        auto [ec] = co_await c.async_connect(asio::as_tuple(use_awaitable));
        REQUIRE_FALSE(ec);
        // ... a presence of type 'get' is neither: declined, and not answered.
        xml::element p("presence", xml::ns::client);
        p.root().set_attr("type", "get");
        p.root().set_attr("to", "localhost");
        co_await c.async_send(std::move(p), use_awaitable);
        // An IQ behind it is, so its answer shows the presence was read first.
        auto [iq_ec, r] = co_await c.async_send_iq(make_iq(iq_type::get, "localhost", "unknown", "urn:x-test"),
                                                   2s, asio::as_tuple(use_awaitable));
        CHECK(iq_ec == stanza_errc::service_unavailable);
        co_await sleep_for(50ms);
        CHECK(client_saw.empty());
        co_await c.async_close(use_awaitable);
    });
}

TEST_CASE("server: wrong password, unknown user and retries") {
    fixture fx;
    auto srv = fx.make_server(fx.server_opts());
    for (auto kind : {listener_kind::tcp, listener_kind::ws}) {
        for (const char* mech : {"SCRAM-SHA-256", "PLAIN"}) {
            if (kind == listener_kind::ws && std::string(mech) == "PLAIN") continue;
            DYNAMIC_SECTION(kind_name(kind) << " " << mech) {
                fx.run([&]() -> asio::awaitable<void> {
                    for (const char* user : {"alice", "mallory"}) {
                        auto o = fx.client_opts(*srv, kind);
                        o.address = jid::parse(std::string(user) + "@localhost");
                        o.password = "wrong";
                        o.sasl.mechanisms = {mech};
                        session c(fx.io.get_executor(), o);
                        auto [ec] = co_await c.async_connect(asio::as_tuple(use_awaitable));
                        // The same answer for a wrong password and an unknown user.
                        CHECK(ec == sasl::errc::not_authorized);
                    }
                    CHECK(fx.sessions.empty());
                });
            }
        }
    }
    SECTION("after max_attempts failed attempts the server closes the stream") {
        fx.run([&]() -> asio::awaitable<void> {
            raw_ws p(fx.io);
            {
                const bool ok = co_await p.handshake(srv->port(2));
                REQUIRE(ok);
            }
            co_await p.text(ws_open);
            {
                const bool ok = co_await p.until_text("</stream:features>");
                REQUIRE(ok);
            }
            // Bad base64 is a failed attempt (incorrect-encoding, RFC 6120 6.5.5).
            const std::string bad = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>!!!</auth>";
            for (int i = 0; i < 3; ++i) co_await p.text(bad);
            {
                const bool ok = co_await p.wait_closed(3000ms);
                CHECK(ok);
            }
            int failures = 0;
            for (auto& t : p.frames().texts) failures += t.find("<failure") != std::string::npos;
            CHECK(failures == 3);
            CHECK(p.got.find("incorrect-encoding") != std::string::npos);
        });
    }
}

TEST_CASE("server: resource conflicts follow the policy") {
    for (auto policy : {bind_conflict::replace_old, bind_conflict::refuse_new, bind_conflict::rename_new}) {
        DYNAMIC_SECTION("policy " << static_cast<int>(policy)) {
            fixture fx;
            auto so = fx.server_opts();
            so.conflict = policy;
            auto srv = fx.make_server(so);
            fx.run([&]() -> asio::awaitable<void> {
                auto o = fx.client_opts(*srv, listener_kind::tcp);
                o.address = jid::parse("alice@localhost/phone");
                std::vector<error_info> first_closed;
                auto o1 = o;
                o1.on_closed = [&](const error_info& e) { first_closed.push_back(e); };
                session a(fx.io.get_executor(), o1);
                auto [ec1] = co_await a.async_connect(asio::as_tuple(use_awaitable));
                REQUIRE_FALSE(ec1);
                CHECK(srv->bound() == 1);
                auto ob = o;
                ob.websocket_url = fx.client_opts(*srv, listener_kind::wss).websocket_url;
                session b2(fx.io.get_executor(), ob);
                auto [ec2] = co_await b2.async_connect(asio::as_tuple(use_awaitable));
                co_await sleep_for(50ms);
                switch (policy) {
                case bind_conflict::replace_old:
                    REQUIRE_FALSE(ec2);
                    CHECK(b2.address().str() == "alice@localhost/phone");
                    REQUIRE(first_closed.size() == 1);
                    CHECK(first_closed[0].code == stream_errc::conflict);
                    CHECK(srv->bound() == 1);
                    break;
                case bind_conflict::refuse_new:
                    CHECK(ec2 == stanza_errc::conflict);
                    CHECK(first_closed.empty());
                    CHECK(a.state() == (a.state() | session_state::ready));
                    break;
                case bind_conflict::rename_new:
                    REQUIRE_FALSE(ec2);
                    CHECK(b2.address().bare().str() == "alice@localhost");
                    CHECK(b2.address().resourcepart() != "phone");
                    CHECK(first_closed.empty());
                    CHECK(srv->bound() == 2);
                    break;
                }
                co_await a.async_close(use_awaitable);
                co_await b2.async_close(use_awaitable);
                co_await sleep_for(50ms);
                fx.sessions.clear();
                co_await sleep_for(50ms);
                CHECK(srv->bound() == 0);
            });
        }
    }
}

TEST_CASE("server: strict WebSocket framing") {
    fixture fx;
    auto srv = fx.make_server(fx.server_opts());
    const auto ws_port = srv->port(2);
    struct row {
        const char* name;
        std::string frame; // what the client sends after the handshake
        const char* condition;
    };
    const std::vector<row> rows = {
        {"an XML declaration and <stream:stream>", ws_frame(1, client_header), "restricted-xml"},
        {"<stream:stream> instead of <open/>", ws_frame(1, "<stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"), "not-well-formed"},
        {"<stream:stream> closed as one element", ws_frame(1, "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'/>"), "bad-format"},
        {"two elements in one message", ws_frame(1, ws_open + ws_open), "bad-format"},
        {"an incomplete element", ws_frame(1, "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'"), "not-well-formed"},
        {"a binary frame", ws_frame(2, ws_open), "unsupported-encoding"},
    };
    for (const auto& r : rows) {
        DYNAMIC_SECTION(r.name) {
            fx.run([&]() -> asio::awaitable<void> {
                raw_ws p(fx.io);
                {
                    const bool ok = co_await p.handshake(ws_port);
                    REQUIRE(ok);
                }
                co_await p.send(r.frame);
                // A stream error, then <close/>, then the WebSocket close.
                {
                    const bool ok = co_await p.until_text(r.condition);
                INFO(p.got);
                    REQUIRE(ok);
                }
                {
                    const bool ok = co_await p.until_text("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>");
                    REQUIRE(ok);
                }
                (void)co_await p.wait_closed(2000ms);
                CHECK((p.frames().closed || p.eof));
                co_await sleep_for(20ms);
                CHECK(srv->pending() == 0);
            });
        }
    }
    SECTION("no xmpp subprotocol: refused") {
        fx.run([&]() -> asio::awaitable<void> {
            raw_ws p(fx.io);
            {
                const bool ok = co_await p.handshake(ws_port, "");
                CHECK_FALSE(ok);
            }
            CHECK(p.got.starts_with("HTTP/1.1 400"));
        });
    }
    SECTION("another path: 404") {
        fx.run([&]() -> asio::awaitable<void> {
            raw_ws p(fx.io);
            {
                const bool ok = co_await p.handshake(ws_port, "xmpp", "/elsewhere");
                CHECK_FALSE(ok);
            }
            CHECK(p.got.starts_with("HTTP/1.1 404"));
        });
    }
    SECTION("a message larger than the element limit") {
        fx.run([&]() -> asio::awaitable<void> {
            raw_ws p(fx.io);
            {
                const bool ok = co_await p.handshake(ws_port);
                REQUIRE(ok);
            }
            co_await p.text(ws_open);
            {
                const bool ok = co_await p.until_text("</stream:features>");
                REQUIRE(ok);
            }
            std::string big = "<message xmlns='jabber:client'><body>" + std::string(300 * 1024, 'x') + "</body></message>";
            // The server may close before all of it is written (EPIPE here).
            const auto frame = ws_frame(1, big);
            (void)co_await asio::async_write(p.sock, asio::buffer(frame), asio::as_tuple(use_awaitable));
            {
                const bool ok = co_await p.wait_closed(3000ms);
                CHECK(ok);
            }
            // Beast fails the WebSocket with close code 1009 (RFC 6455 7.4.1)
            // before the element could be parsed: no stream error can follow.
            auto f = p.frames();
            CHECK((f.closed || p.eof));
            co_await sleep_for(50ms);
            CHECK(srv->pending() == 0);
        });
    }
    SECTION("a well-framed stream: <open/> answered with <open/> and features, no STARTTLS") {
        fx.run([&]() -> asio::awaitable<void> {
            raw_ws p(fx.io);
            {
                const bool ok = co_await p.handshake(ws_port);
                REQUIRE(ok);
            }
            co_await p.text(ws_open);
            {
                const bool ok = co_await p.until_text("</stream:features>");
                REQUIRE(ok);
            }
            auto f = p.frames();
            REQUIRE(f.texts.size() == 2);
            CHECK(f.texts[0].starts_with("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost' id='"));
            CHECK(f.texts[1].find("xmpp-tls") == std::string::npos);
            CHECK(f.texts[1].find("SCRAM-SHA-256") != std::string::npos);
            CHECK(f.texts[1].find("PLAIN") == std::string::npos);
            // A stanza before authentication: not-authorized.
            co_await p.text("<message xmlns='jabber:client' to='bob@localhost'><body>spam</body></message>");
            {
                const bool ok = co_await p.until_text("not-authorized");
                CHECK(ok);
            }
        });
    }
}

TEST_CASE("server: see-other-uri redirects a WebSocket client") {
    fixture fx;
    auto target = fx.make_server(fx.server_opts());
    auto so = fx.server_opts();
    so.ws_see_other_uri = "ws://127.0.0.1:" + std::to_string(target->port(2)) + "/xmpp-websocket";
    server moved(fx.io.get_executor(), so);
    moved.listen({loopback, 0}, listener_kind::ws);
    moved.start([](session) {});
    fx.run([&]() -> asio::awaitable<void> {
        auto o = fx.client_opts(*target, listener_kind::ws);
        o.websocket_url = "ws://127.0.0.1:" + std::to_string(moved.port(0)) + "/xmpp-websocket";
        {
            session c(fx.io.get_executor(), o);
            auto [ec] = co_await c.async_connect(asio::as_tuple(use_awaitable));
            INFO(c.last_error().what());
            REQUIRE_FALSE(ec);
            CHECK(fx.sessions.size() == 1);
            co_await c.async_close(use_awaitable);
        }
        o.max_redirects = 0;
        session c(fx.io.get_executor(), o);
        auto [ec] = co_await c.async_connect(asio::as_tuple(use_awaitable));
        CHECK(ec == stream_errc::see_other_host);
        CHECK(c.last_error().text.find(so.ws_see_other_uri) != std::string::npos);
    });
}

TEST_CASE("server: stream errors both ways") {
    fixture fx;
    auto srv = fx.make_server(fx.server_opts());
    fx.run([&]() -> asio::awaitable<void> {
        // The client ends with a stream error: the server side sees its condition.
        {
            session c(fx.io.get_executor(), fx.client_opts(*srv, listener_kind::tcp));
            auto [cec] = co_await c.async_connect(asio::as_tuple(use_awaitable));
            REQUIRE_FALSE(cec);
            stream_error se;
            se.condition = stream_errc::policy_violation;
            se.text = "bye";
            co_await c.async_send(se.to_element(), use_awaitable);
            for (int i = 0; i < 100 && fx.server_closed.empty(); ++i) co_await sleep_for(10ms);
            REQUIRE(fx.server_closed.size() == 1);
            CHECK(fx.server_closed[0].code == stream_errc::policy_violation);
            CHECK(fx.server_closed[0].text.find("bye") != std::string::npos);
        }
        // The server's side sends one (a 'from' that is not the client's).
        {
            std::vector<error_info> closed;
            auto o = fx.client_opts(*srv, listener_kind::ws);
            o.on_closed = [&](const error_info& e) { closed.push_back(e); };
            session c(fx.io.get_executor(), o);
            auto [cec] = co_await c.async_connect(asio::as_tuple(use_awaitable));
            REQUIRE_FALSE(cec);
            xml::element m("message", xml::ns::client);
            m.root().set_attr("from", "mallory@localhost/x");
            m.root().set_attr("to", "bob@localhost");
            co_await c.async_send(std::move(m), use_awaitable);
            for (int i = 0; i < 100 && closed.empty(); ++i) co_await sleep_for(10ms);
            REQUIRE(closed.size() == 1);
            CHECK(closed[0].code == stream_errc::invalid_from);
        }
        // host-unknown for another domain, answered with a header first.
        {
            raw_peer p(fx.io);
            co_await p.connect(srv->port(0));
            co_await p.send("<?xml version='1.0'?><stream:stream to='other.example' xmlns='jabber:client'"
                            " xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>");
            {
                const bool ok = co_await p.read_until("host-unknown");
                CHECK(ok);
            }
            CHECK(p.got.find("<stream:stream") != std::string::npos);
            {
                const bool ok = co_await p.read_until("</stream:stream>");
                CHECK(ok);
            }
        }
    });
}

TEST_CASE("server: limits cut bad clients off without hurting others") {
    fixture fx;
    auto so = fx.server_opts();
    so.handshake_timeout = 600ms;
    so.step_timeout = 300ms;
    so.max_pending = 4;
    auto srv = fx.make_server(so);
    std::vector<std::pair<const char*, std::function<asio::awaitable<void>()>>> cases;
    cases.emplace_back("a client that never sends anything", [&]() -> asio::awaitable<void> {
            raw_peer p(fx.io);
            co_await p.connect(srv->port(0));
            const auto t0 = std::chrono::steady_clock::now();
            {
                const bool ok = co_await p.wait_closed(3000ms);
                CHECK(ok);
            }
            CHECK(std::chrono::steady_clock::now() - t0 < 2s);
    });
    cases.emplace_back("a client that trickles bytes is cut off by the handshake deadline", [&]() -> asio::awaitable<void> {
            raw_peer p(fx.io);
            co_await p.connect(srv->port(0));
            const auto t0 = std::chrono::steady_clock::now();
            for (char c : client_header) {
                if (p.eof) break;
                boost::system::error_code ec;
                p.sock.write_some(asio::buffer(&c, 1), ec);
                if (ec) break;
                co_await sleep_for(50ms);
                if (std::chrono::steady_clock::now() - t0 > 3s) break;
            }
            {
                const bool ok = co_await p.wait_closed(2000ms);
                CHECK(ok);
            }
            CHECK(std::chrono::steady_clock::now() - t0 < 3s);
    });
    cases.emplace_back("a flood of stanzas before authentication", [&]() -> asio::awaitable<void> {
            raw_peer p(fx.io);
            co_await p.connect(srv->port(0));
            co_await p.send(client_header);
            std::string flood;
            for (int i = 0; i < 1000; ++i) flood += "<message to='bob@localhost'><body>spam</body></message>";
            boost::system::error_code ec;
            asio::write(p.sock, asio::buffer(flood), ec);
            {
                const bool ok = co_await p.read_until("not-authorized");
                CHECK(ok);
            }
            {
                const bool ok = co_await p.wait_closed(2000ms);
                CHECK(ok);
            }
    });
    cases.emplace_back("an oversized element on TCP", [&]() -> asio::awaitable<void> {
            raw_peer p(fx.io);
            co_await p.connect(srv->port(0));
            co_await p.send(client_header);
            std::string big = "<message><body>" + std::string(300 * 1024, 'x');
            boost::system::error_code ec;
            asio::write(p.sock, asio::buffer(big), ec);
            {
                const bool ok = co_await p.read_until("policy-violation");
                CHECK(ok);
            }
    });
    cases.emplace_back("max_pending: extra idle connections are closed at once; a real client still gets in after", [&]() -> asio::awaitable<void> {
            std::vector<std::unique_ptr<raw_peer>> idle;
            for (int i = 0; i < 4; ++i) {
                idle.push_back(std::make_unique<raw_peer>(fx.io));
                co_await idle.back()->connect(srv->port(0));
            }
            co_await sleep_for(50ms);
            CHECK(srv->pending() == 4);
            raw_peer extra(fx.io);
            co_await extra.connect(srv->port(0));
            {
                const bool ok = co_await extra.wait_closed(300ms);
                CHECK(ok);
            }
            // Once the idle ones time out, logins work again.
            co_await sleep_for(900ms);
            CHECK(srv->pending() == 0);
            session c(fx.io.get_executor(), fx.client_opts(*srv, listener_kind::tcp));
            auto [ec] = co_await c.async_connect(asio::as_tuple(use_awaitable));
            CHECK_FALSE(ec);
    });
    cases.emplace_back("a bad client beside a good one", [&]() -> asio::awaitable<void> {
            raw_peer bad(fx.io);
            co_await bad.connect(srv->port(0));
            co_await bad.send("<not xml");
            session c(fx.io.get_executor(), fx.client_opts(*srv, listener_kind::wss));
            auto [ec] = co_await c.async_connect(asio::as_tuple(use_awaitable));
            CHECK_FALSE(ec);
            {
                const bool ok = co_await bad.wait_closed(2000ms);
                CHECK(ok);
            }
            auto [iq_ec, r] = co_await c.async_send_iq(make_iq(iq_type::get, "localhost", "ping", "urn:xmpp:ping"),
                                                       asio::as_tuple(use_awaitable));
            CHECK_FALSE(iq_ec);
    });
    for (auto& [name, f] : cases)
        DYNAMIC_SECTION(name) { fx.run(f); }
}

TEST_CASE("server: PLAIN checked by Cyrus SASL against a sasldb file") {
    std::string tool;
    for (const char* p : {"/usr/sbin/saslpasswd2", "/usr/bin/saslpasswd2"})
        if (::access(p, X_OK) == 0) tool = p;
    INFO("saslpasswd2 (package sasl2-bin) is needed: scripts/setup.sh test");
    REQUIRE_FALSE(tool.empty());
    fixture fx;
    const std::string db = (fx.dir.path() / "sasldb2").string();
    const std::string cmd = "printf %s 'carol-pass' | " + tool + " -p -f " + db + " -u localhost -c carol";
    REQUIRE(std::system(cmd.c_str()) == 0);
    auto so = fx.server_opts();
    so.sasl.plain_check = nullptr;
    so.sasl.scram_lookup = nullptr; // PLAIN only
    so.sasl.allow_anonymous = false;
    so.sasl.sasldb_path = db;
    auto srv = fx.make_server(so);
    fx.passwords["carol"] = "carol-pass";
    fx.run([&]() -> asio::awaitable<void> {
        for (const char* pass : {"carol-pass", "wrong"}) {
            auto o = fx.client_opts(*srv, listener_kind::direct_tls, "carol");
            o.password = pass;
            session c(fx.io.get_executor(), o);
            auto [ec] = co_await c.async_connect(asio::as_tuple(use_awaitable));
            if (std::string(pass) == "wrong") {
                CHECK(ec == sasl::errc::not_authorized);
            } else {
                INFO(c.last_error().what());
                CHECK_FALSE(ec);
                CHECK(c.sasl_mechanism() == "PLAIN");
                co_await c.async_close(use_awaitable);
            }
        }
    });
}
