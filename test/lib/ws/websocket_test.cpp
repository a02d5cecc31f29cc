// RFC 7395 WebSocket transport: both ends in one io_context over loopback
// sockets (ours against ours, with and without TLS), and against a peer
// written by hand for frames our transport never sends. Plus the URL parser,
// the host-meta document parsers and the error category.
#include "support.hpp"

#include "testbed/pki.hpp"
#include "ws/detail.hpp"

#include <xmpp/tls.hpp>
#include <xmpp/websocket.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <random>

using namespace ws_test;
namespace ws = xmpp::ws;
namespace tls = xmpp::tls;
using namespace asio::experimental::awaitable_operators;

namespace {

// --- Fixtures --------------------------------------------------------------------------

struct test_pki {
    xmpp::testbed::temp_dir dir{"xmpp-ws-test"};
    xmpp::testbed::pki ca{dir.path() / "pki"};
    xmpp::testbed::pki::leaf localhost = ca.issue("localhost");
};

const test_pki& pki() {
    static test_pki p;
    return p;
}

tls::context client_ctx() {
    tls::client_options o;
    o.ca_file = pki().ca.ca_cert().string();
    o.use_system_store = false;
    return tls::context::make_client(o);
}

tls::context server_ctx() {
    tls::server_options o;
    o.cert_file = pki().localhost.cert.string();
    o.key_file = pki().localhost.key.string();
    return tls::context::make_server(o);
}

ws::options client_opts() {
    ws::options o;
    o.host = "localhost";
    o.target = "/xmpp-websocket";
    return o;
}

struct ws_pair {
    transport_ptr client, server;
};

// (No default arguments of class type on coroutines: GCC 12 copies them
// bitwise into the frame, and a std::string's small buffer then dangles.)
asio::awaitable<ws_pair> ws_handshake(transport_ptr c, transport_ptr s, ws::options co, ws::options so) {
    auto a = ws::connect(std::move(c), co);
    auto b = ws::accept(std::move(s), so);
    auto t = co_await (std::move(a) && std::move(b));
    co_return ws_pair{std::move(std::get<0>(t)), std::move(std::get<1>(t))};
}

asio::awaitable<ws_pair> ws_handshake(transport_ptr c, transport_ptr s) {
    return ws_handshake(std::move(c), std::move(s), client_opts(), ws::options{});
}

asio::awaitable<ws_pair> plain_pair(asio::io_context& io, ws::options co, ws::options so) {
    auto sp = socket_pair(io);
    auto h = ws_handshake(tls::make_tcp_transport(std::move(sp.first)), tls::make_tcp_transport(std::move(sp.second)),
                          std::move(co), std::move(so));
    co_return co_await std::move(h);
}

asio::awaitable<ws_pair> plain_pair(asio::io_context& io) { return plain_pair(io, client_opts(), ws::options{}); }

asio::awaitable<ws_pair> secure_pair(asio::io_context& io) {
    auto sp = socket_pair(io);
    auto& c = sp.first;
    auto& s = sp.second;
    const auto cctx = client_ctx();
    const auto sctx = server_ctx();
    auto a = tls::connect(std::move(c), cctx, "localhost");
    auto b = tls::accept(std::move(s), sctx);
    auto t = co_await (std::move(a) && std::move(b));
    co_return co_await ws_handshake(std::move(std::get<0>(t)), std::move(std::get<1>(t)));
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::use_awaitable);
}

std::string xml_of_size(std::size_t n, char fill = 'x') {
    REQUIRE(n >= 7);
    return "<m>" + std::string(n - 7, fill) + "</m>";
}

// Counts the writes that reach the transport it wraps (everything else forwards).
class counting_transport final : public xmpp::transport {
public:
    counting_transport(transport_ptr inner, std::size_t* writes) : inner_(std::move(inner)), writes_(writes) {}
    asio::any_io_executor get_executor() override { return inner_->get_executor(); }
    std::size_t read_some(asio::mutable_buffer b, error_code& ec) override { return inner_->read_some(b, ec); }
    asio::awaitable<void> wait_read() override { return inner_->wait_read(); }
    asio::awaitable<void> write(std::string_view d) override {
        ++*writes_;
        return inner_->write(d);
    }
    asio::awaitable<void> shutdown() override { return inner_->shutdown(); }
    void close() noexcept override { inner_->close(); }
    bool is_secure() const noexcept override { return inner_->is_secure(); }

private:
    transport_ptr inner_;
    std::size_t* writes_;
};

} // namespace

// --- Handshakes ------------------------------------------------------------------------

TEST_CASE("websocket: ws:// handshake, one message each way, properties of the layer below", "[websocket]") {
    asio::io_context io;
    run_co(io, [&]() -> asio::awaitable<void> {
        auto p = co_await plain_pair(io);
        CHECK(p.client->message_oriented());
        CHECK(p.server->message_oriented());
        CHECK_FALSE(p.client->is_secure());
        CHECK_FALSE(p.client->peer_verified());
        CHECK(p.client->tls_version() == 0);
        CHECK(p.client->channel_binding("tls-exporter").empty());
        CHECK(p.client->remote_endpoint_text().rfind("127.0.0.1:", 0) == 0);
        CHECK(p.client->get_executor() == io.get_executor());

        const std::string open = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";
        co_await p.client->write(open);
        const auto got = co_await read_message(*p.server);
        CHECK(got == open);
        co_await p.server->write("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost'/>");
        const auto back = co_await read_message(*p.client);
        CHECK(back == "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost'/>");
    }());
}

TEST_CASE("websocket: wss:// over our TLS transport forwards TLS state and channel binding", "[websocket]") {
    asio::io_context io;
    run_co(io, [&]() -> asio::awaitable<void> {
        auto p = co_await secure_pair(io);
        CHECK(p.client->is_secure());
        CHECK(p.server->is_secure());
        CHECK(p.client->peer_verified());
        CHECK(p.client->tls_version() == 0x0304);
        const auto cb_client = p.client->channel_binding("tls-exporter");
        const auto cb_server = p.server->channel_binding("tls-exporter");
        CHECK(cb_client.size() == 32);
        CHECK(cb_client == cb_server);
        CHECK(p.client->channel_binding("tls-server-end-point") == p.server->channel_binding("tls-server-end-point"));
        CHECK_FALSE(p.client->channel_binding("tls-server-end-point").empty());

        // A large message each way: TLS records, Beast's buffer and ours in between.
        const std::string big = xml_of_size(200 * 1024, 'b');
        auto w = p.client->write(big);
        auto r = read_message(*p.server, 16 * 1024);
        auto t = co_await (std::move(w) && std::move(r));
        CHECK(t == big);
        co_await p.server->write("<ok/>");
        const auto ok = co_await read_message(*p.client);
        CHECK(ok == "<ok/>");
    }());
}

TEST_CASE("websocket: the client's upgrade request (RFC 6455 4.1, RFC 7395 3.1) and masking", "[websocket]") {
    asio::io_context io;
    auto sp = socket_pair(io);
    auto& c = sp.first;
    auto& s = sp.second;
    raw_peer srv{std::move(s)};
    run_co(io, [&]() -> asio::awaitable<void> {
        auto o = client_opts();
        o.host = "chat.example:5280";
        o.target = "/ws?room=1";
        o.origin = "https://chat.example";
        auto client = ws::connect(tls::make_tcp_transport(std::move(c)), o);
        auto t = co_await (std::move(client) && srv.accept());
        auto& head = std::get<1>(t);
        auto& ws_client = std::get<0>(t);
        CHECK(head.rfind("GET /ws?room=1 HTTP/1.1\r\n", 0) == 0);
        CHECK(header_value(head, "Host") == "chat.example:5280");
        CHECK(header_value(head, "Sec-WebSocket-Protocol") == "xmpp");
        CHECK(header_value(head, "Origin") == "https://chat.example");
        CHECK(lower(header_value(head, "Upgrade")) == "websocket");
        CHECK(header_value(head, "Sec-WebSocket-Version") == "13");
        CHECK(header_value(head, "Sec-WebSocket-Extensions").empty()); // no permessage-deflate

        co_await ws_client->write("<a/>");
        const auto f = co_await srv.read_frame();
        CHECK(f.masked); // RFC 6455 5.3: every client frame
        CHECK(f.fin);
        CHECK(f.opcode == 1);
        CHECK(f.payload == "<a/>");
    }());
}

TEST_CASE("websocket: a client refuses a 101 without the xmpp subprotocol and closes (RFC 7395 3.1)", "[websocket]") {
    const std::string answer = GENERATE(std::string(""), std::string("chat"));
    asio::io_context io;
    auto sp = socket_pair(io);
    auto& c = sp.first;
    auto& s = sp.second;
    raw_peer srv{std::move(s)};
    run_co(io, [&]() -> asio::awaitable<void> {
        auto client = failure_of(ws::connect(tls::make_tcp_transport(std::move(c)), client_opts()));
        auto server = [&]() -> asio::awaitable<unsigned> {
            co_await srv.accept(answer);
            const auto f = co_await srv.read_frame(); // the client's Close frame
            REQUIRE(f.opcode == 8);
            co_await srv.send(frame(8, f.payload));
            const bool eof = co_await srv.at_eof();
            CHECK(eof);
            co_return f.close_code();
        };
        auto t = co_await (std::move(client) && server());
        CHECK(std::get<0>(t).first == ws::errc::no_subprotocol);
        CHECK(std::get<0>(t).second.find("xmpp") != std::string::npos);
        CHECK(std::get<1>(t) == 1002); // protocol error
    }());
}

TEST_CASE("websocket: a client reports the HTTP status of a refused upgrade", "[websocket]") {
    asio::io_context io;
    run_co(io, [&]() -> asio::awaitable<void> {
        auto sp = socket_pair(io);
    auto& c = sp.first;
    auto& s = sp.second;
        auto o = client_opts();
        o.target = "/elsewhere";
        auto client = failure_of(ws::connect(tls::make_tcp_transport(std::move(c)), o));
        auto server = failure_of(ws::accept(tls::make_tcp_transport(std::move(s)), ws::options{}));
        auto t = co_await (std::move(client) && std::move(server));
        CHECK(std::get<0>(t).first == ws::errc::handshake_failed);
        CHECK(std::get<0>(t).second.find("HTTP 404") != std::string::npos);
        CHECK(std::get<1>(t).first == ws::errc::not_found);
        CHECK(std::get<1>(t).second.find("/elsewhere") != std::string::npos);
    }());
}

TEST_CASE("websocket: a client with bad arguments throws invalid_argument", "[websocket]") {
    asio::io_context io;
    auto sp = socket_pair(io);
    auto& c = sp.first;
    auto o = client_opts();
    o.host.clear();
    CHECK_THROWS_AS(run_co(io, ws::connect(tls::make_tcp_transport(std::move(c)), o)), std::invalid_argument);
    auto sp2 = socket_pair(io);
    o = client_opts();
    o.origin = "https://a.example\r\nX-Injected: 1";
    CHECK_THROWS_AS(run_co(io, ws::connect(tls::make_tcp_transport(std::move(sp2.first)), o)), std::invalid_argument);
}

namespace {

struct refused_case {
    const char* name;
    std::string request;
    int status;
    ws::errc code;
};

} // namespace

TEST_CASE("websocket: the server refuses bad upgrade requests with an HTTP status", "[websocket]") {
    const std::string big(9000, 'a');
    const std::vector<refused_case> cases = {
        {"no subprotocol", upgrade_request("/xmpp-websocket", ""), 400, ws::errc::no_subprotocol},
        {"other subprotocols", upgrade_request("/xmpp-websocket", "Sec-WebSocket-Protocol: chat, xmpp2\r\n"), 400,
         ws::errc::no_subprotocol},
        {"wrong path", upgrade_request("/other", "Sec-WebSocket-Protocol: xmpp\r\n"), 404, ws::errc::not_found},
        {"not an upgrade", "GET /xmpp-websocket HTTP/1.1\r\nHost: localhost\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n",
         400, ws::errc::handshake_failed},
        {"POST", "POST /xmpp-websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                 "Sec-WebSocket-Protocol: xmpp\r\n\r\n",
         400, ws::errc::handshake_failed},
        {"version 8 (RFC 6455 4.4)",
         "GET /xmpp-websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n",
         426, ws::errc::handshake_failed},
        {"header over the limit", upgrade_request("/xmpp-websocket", "Sec-WebSocket-Protocol: xmpp\r\nX-Big: " + big + "\r\n"),
         431, ws::errc::handshake_failed},
        {"data before the 101 (RFC 6455 4.1)",
         upgrade_request("/xmpp-websocket", "Sec-WebSocket-Protocol: xmpp\r\n") + frame(1, "<open/>", true, true), 400,
         ws::errc::handshake_failed},
        {"malformed", "GET /xmpp-websocket HTTP/1.1\r\nHost localhost\r\n\r\n", 400, ws::errc::handshake_failed},
    };
    for (const auto& tc : cases) {
        SECTION(tc.name) {
            asio::io_context io;
            auto sp = socket_pair(io);
    auto& c = sp.first;
    auto& s = sp.second;
            raw_peer cli{std::move(c)};
            run_co(io, [&]() -> asio::awaitable<void> {
                auto server = error_of(ws::accept(tls::make_tcp_transport(std::move(s)), ws::options{}));
                auto client = [&]() -> asio::awaitable<std::string> {
                    co_await cli.send(tc.request);
                    std::string head = co_await cli.read_head();
                    cli.sock.shutdown(tcp::socket::shutdown_send); // ends the server's lingering read
                    co_return head;
                };
                auto t = co_await (std::move(server) && client());
                CHECK(std::get<0>(t) == tc.code);
                CHECK(status_of(std::get<1>(t)) == tc.status);
                CHECK(header_value(std::get<1>(t), "Sec-WebSocket-Protocol").empty());
                if (tc.status == 426) CHECK(header_value(std::get<1>(t), "Sec-WebSocket-Version") == "13");
            }());
        }
    }
}

TEST_CASE("websocket: the server accepts xmpp among other offers and a query, answers unmasked", "[websocket]") {
    asio::io_context io;
    auto sp = socket_pair(io);
    auto& c = sp.first;
    auto& s = sp.second;
    raw_peer cli{std::move(c)};
    run_co(io, [&]() -> asio::awaitable<void> {
        auto server = ws::accept(tls::make_tcp_transport(std::move(s)), ws::options{});
        auto client = [&]() -> asio::awaitable<std::string> {
            co_await cli.send(upgrade_request("/xmpp-websocket?x=1",
                                              "Sec-WebSocket-Protocol: chat, xmpp\r\nSec-WebSocket-Protocol: soap\r\n"));
            co_return co_await cli.read_head();
        };
        auto t = co_await (std::move(server) && client());
        auto& srv = std::get<0>(t);
        const auto& head = std::get<1>(t);
        CHECK(status_of(head) == 101);
        CHECK(header_value(head, "Sec-WebSocket-Protocol") == "xmpp");
        CHECK(header_value(head, "Sec-WebSocket-Accept") == accept_key("dGhlIHNhbXBsZSBub25jZQ=="));

        co_await cli.send(frame(1, "<open/>", true, true));
        const auto got = co_await read_message(*srv);
        CHECK(got == "<open/>");
        co_await srv->write("<open from='x'/>");
        const auto f = co_await cli.read_frame();
        CHECK_FALSE(f.masked); // RFC 6455 5.1: servers do not mask
        CHECK(f.payload == "<open from='x'/>");

        // An unmasked client frame is a protocol error (RFC 6455 5.1).
        co_await cli.send(frame(1, "<x/>"));
        const auto ec = co_await read_error(*srv);
        CHECK(ec);
        CHECK(ec != asio::error::would_block);
    }());
}

// --- Messages ----------------------------------------------------------------------------

TEST_CASE("websocket: message boundaries with small and large reads", "[websocket]") {
    const std::size_t chunk = GENERATE(1, 7, 1536, 65536);
    asio::io_context io;
    run_co(io, [&]() -> asio::awaitable<void> {
        auto p = co_await plain_pair(io);
        const std::vector<std::string> msgs = {"<a/>", xml_of_size(3000), xml_of_size(chunk == 1 ? 5000 : 40000, 'y'),
                                               "<b/>", xml_of_size(1536), xml_of_size(1537)};
        std::vector<std::string_view> views(msgs.begin(), msgs.end());
        co_await p.client->write_messages(views);
        for (const auto& m : msgs) {
            const auto got = co_await read_message(*p.server, chunk);
            REQUIRE(got.size() == m.size());
            CHECK(got == m);
        }
        // The other way (server frames are not masked: another Beast path).
        co_await p.server->write_messages(views);
        for (const auto& m : msgs) {
            const auto got = co_await read_message(*p.client, chunk);
            CHECK(got == m);
        }
    }());
}

namespace {

// Reads one message with a random buffer size for each read_some().
asio::awaitable<std::string> read_message_random(xmpp::transport& t, std::mt19937& rng) {
    std::string msg;
    std::vector<char> buf(6000);
    for (;;) {
        const std::size_t chunk = std::uniform_int_distribution<std::size_t>(1, buf.size())(rng);
        error_code ec;
        const std::size_t n = t.read_some(asio::buffer(buf.data(), chunk), ec);
        if (ec == asio::error::would_block) {
            co_await t.wait_read();
            continue;
        }
        if (ec) throw system_error(ec, "read_message_random");
        REQUIRE(n > 0);
        msg.append(buf.data(), n);
        if (t.message_complete()) co_return msg;
    }
}

// A random stream of frames: messages in 1-4 fragments (some empty, an empty
// final one at times), empty messages, pings and pongs between fragments.
struct random_stream {
    std::string wire;                   // what the peer sends
    std::vector<std::string> messages;  // what the reader must get (non-empty ones)
    std::vector<std::string> pings;     // payloads, in order
};

random_stream make_stream(std::mt19937& rng, int count, bool mask) {
    random_stream r;
    auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    auto control = [&] {
        const int k = pick(0, 9);
        if (k == 0) {
            std::string p(static_cast<std::size_t>(pick(0, 125)), static_cast<char>('a' + pick(0, 25)));
            r.pings.push_back(p);
            r.wire += frame(9, p, true, mask);
        } else if (k == 1) {
            r.wire += frame(10, "unsolicited", true, mask);
        }
    };
    for (int i = 0; i < count; ++i) {
        const int kind = pick(0, 9);
        std::size_t size = kind < 6 ? static_cast<std::size_t>(pick(1, 300)) : kind < 9 ? static_cast<std::size_t>(pick(300, 5000)) : 0;
        std::string m;
        for (std::size_t j = 0; j < size; ++j) m += static_cast<char>('A' + (i + static_cast<int>(j)) % 26);
        const int parts = size == 0 ? 1 : pick(1, 4);
        std::size_t at = 0;
        for (int f = 0; f < parts; ++f) {
            const bool last = f == parts - 1;
            std::size_t len = last ? m.size() - at : static_cast<std::size_t>(pick(0, static_cast<int>(m.size() - at)));
            r.wire += frame(f == 0 ? 1 : 0, std::string_view(m).substr(at, len), last, mask);
            at += len;
            if (!last) control();
        }
        if (pick(0, 7) == 0) { // an extra empty final fragment: re-send the last one open
            // (rewrite: the message above already ended; add a separate one that ends empty)
            std::string n2 = "<late/>";
            r.wire += frame(1, n2, false, mask) + frame(0, "", true, mask);
            if (!m.empty()) r.messages.push_back(m);
            m = n2;
        }
        if (!m.empty()) r.messages.push_back(m);
        control();
    }
    return r;
}

// Sends `wire` in random pieces, with short pauses now and then.
asio::awaitable<void> send_in_pieces(raw_peer& p, const std::string& wire, std::mt19937& rng) {
    std::size_t at = 0;
    while (at < wire.size()) {
        const std::size_t n = std::min<std::size_t>(wire.size() - at, std::uniform_int_distribution<std::size_t>(1, 900)(rng));
        co_await p.send(wire.substr(at, n));
        at += n;
        if (std::uniform_int_distribution<int>(0, 5)(rng) == 0) co_await sleep_for(std::chrono::milliseconds(0));
        if (std::uniform_int_distribution<int>(0, 40)(rng) == 0) co_await sleep_for(std::chrono::milliseconds(2));
    }
}

} // namespace

TEST_CASE("websocket: random fragmentation, control frames and segmenting (both roles)", "[websocket]") {
    const unsigned seed = GENERATE(1u, 2u, 3u, 4u, 5u, 6u);
    const bool we_are_client = GENERATE(true, false);
    INFO("seed " << seed << (we_are_client ? " client" : " server"));
    std::mt19937 rng(seed);
    asio::io_context io;
    auto sp = socket_pair(io);
    run_co(io, [&]() -> asio::awaitable<void> {
        transport_ptr ours;
        raw_peer peer{we_are_client ? std::move(sp.second) : std::move(sp.first)};
        if (we_are_client) {
            auto a = ws::connect(tls::make_tcp_transport(std::move(sp.first)), client_opts());
            auto t = co_await (std::move(a) && peer.accept());
            ours = std::move(std::get<0>(t));
        } else {
            auto a = ws::accept(tls::make_tcp_transport(std::move(sp.second)), ws::options{});
            auto hs = [&]() -> asio::awaitable<void> {
                co_await peer.send(upgrade_request("/xmpp-websocket", "Sec-WebSocket-Protocol: xmpp\r\n"));
                const auto head = co_await peer.read_head();
                REQUIRE(status_of(head) == 101);
            };
            auto t = co_await (std::move(a) && hs());
            ours = std::move(t);
        }
        const auto stream = make_stream(rng, 300, !we_are_client);
        auto reader = [&]() -> asio::awaitable<void> {
            std::mt19937 rr(seed * 7919u);
            for (const auto& m : stream.messages) {
                const auto got = co_await read_message_random(*ours, rr);
                REQUIRE(got.size() == m.size());
                REQUIRE(got == m);
            }
        };
        auto pongs = [&]() -> asio::awaitable<void> {
            for (const auto& p : stream.pings) {
                const auto f = co_await peer.read_frame();
                REQUIRE(f.opcode == 10);
                REQUIRE(f.payload == p);
                REQUIRE(f.masked == we_are_client);
            }
        };
        auto sender = [&]() -> asio::awaitable<void> { co_await send_in_pieces(peer, stream.wire, rng); };
        co_await (reader() && pongs() && sender());
        // Then the end: a Close, read as eof after everything else.
        co_await peer.send(frame(8, close_payload(1000), true, !we_are_client));
        const auto ec = co_await read_error(*ours);
        CHECK(ec == asio::error::eof);
    }());
}

namespace {

// A client over a raw server that has accepted it.
struct raw_server_fixture {
    asio::io_context io;
    raw_peer srv{tcp::socket(io)};
    transport_ptr client;

    explicit raw_server_fixture(ws::options o = client_opts()) {
        auto sp = socket_pair(io);
        auto& c = sp.first;
        srv.sock = std::move(sp.second);
        client = run_co(io, [&]() -> asio::awaitable<transport_ptr> {
            auto a = ws::connect(tls::make_tcp_transport(std::move(c)), o);
            auto t = co_await (std::move(a) && srv.accept());
            co_return std::move(std::get<0>(t));
        }());
    }
};

} // namespace

TEST_CASE("websocket: fragments are reassembled; pings answered, control frames are no messages", "[websocket]") {
    const std::size_t chunk = GENERATE(1, 3, 4096);
    raw_server_fixture f;
    run_co(f.io, [&]() -> asio::awaitable<void> {
        // One write: text fragment, ping, continuation, an unsolicited pong,
        // continuation, an empty final continuation (RFC 6455 5.4), an empty
        // message, then a message in one frame.
        const std::string wire = frame(1, "<mess", false) + frame(9, "hello") + frame(0, "age>", false) +
                                 frame(10, "x") + frame(0, "</message>", false) + frame(0, "", true) + frame(1, "") +
                                 frame(1, "<b/>");
        auto peer = [&]() -> asio::awaitable<raw_frame> {
            co_await f.srv.send(wire);
            co_return co_await f.srv.read_frame(); // the pong
        };
        auto reader = [&]() -> asio::awaitable<std::vector<std::string>> {
            std::vector<std::string> got;
            got.push_back(co_await read_message(*f.client, chunk));
            got.push_back(co_await read_message(*f.client, chunk));
            co_return got;
        };
        auto t = co_await (reader() && peer());
        const auto& got = std::get<0>(t);
        const auto& pong = std::get<1>(t);
        REQUIRE(got.size() == 2);
        CHECK(got[0] == "<message></message>");
        CHECK(got[1] == "<b/>");
        CHECK(pong.opcode == 10);
        CHECK(pong.payload == "hello");
        CHECK(pong.masked);
    }());
}

TEST_CASE("websocket: a frame in the same segment as the 101 is read without waiting", "[websocket]") {
    asio::io_context io;
    auto sp = socket_pair(io);
    auto& c = sp.first;
    auto& s = sp.second;
    raw_peer srv{std::move(s)};
    run_co(io, [&]() -> asio::awaitable<void> {
        auto client_t = ws::connect(tls::make_tcp_transport(std::move(c)), client_opts());
        auto server = [&]() -> asio::awaitable<void> {
            const std::string head = co_await srv.read_head();
            co_await srv.send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Protocol: xmpp\r\nSec-WebSocket-Accept: " +
                              accept_key(header_value(head, "Sec-WebSocket-Key")) + "\r\n\r\n" + frame(1, "<open/>") +
                              frame(1, "<features/>"));
        };
        auto client = co_await (std::move(client_t) && server()); // void results drop out
        const auto a = co_await read_message(*client);
        const auto b = co_await read_message(*client);
        CHECK(a == "<open/>");
        CHECK(b == "<features/>");
    }());
}


TEST_CASE("websocket: a reader that falls behind: the read-ahead pauses, nothing is lost", "[websocket]") {
    raw_server_fixture f;
    run_co(f.io, [&]() -> asio::awaitable<void> {
        std::string wire;
        std::vector<std::string> msgs;
        for (int i = 0; i < 300; ++i) {
            msgs.push_back(xml_of_size(1000 + static_cast<std::size_t>(i), static_cast<char>('a' + i % 26)));
            wire += frame(1, msgs.back());
        }
        co_await f.srv.send(wire); // ~450 KiB: more than the read-ahead takes
        std::size_t n = 0;
        char b[16];
        error_code ec;
        CHECK(f.client->read_some(asio::buffer(b), ec) == 0); // nothing before wait_read
        CHECK(ec == asio::error::would_block);
        co_await f.client->wait_read();
        co_await sleep_for(100ms); // the read-ahead fills up meanwhile and pauses
        for (const auto& m : msgs) {
            const auto got = co_await read_message(*f.client, 700);
            REQUIRE(got == m);
            ++n;
        }
        CHECK(n == msgs.size());
    }());
}

TEST_CASE("websocket: a binary message fails the read; shutdown() then sends 1003", "[websocket]") {
    raw_server_fixture f;
    run_co(f.io, [&]() -> asio::awaitable<void> {
        // The message before it is read first, then the error.
        co_await f.srv.send(frame(1, "<a/>") + frame(2, std::string("\x01\x02\x03", 3)));
        const auto a = co_await read_message(*f.client);
        CHECK(a == "<a/>");
        const auto ec = co_await read_error(*f.client);
        CHECK(ec == ws::errc::binary_frame);
        // Sticky.
        char b[8];
        error_code ec2;
        CHECK(f.client->read_some(asio::buffer(b), ec2) == 0);
        CHECK(ec2 == ws::errc::binary_frame);

        auto peer = [&]() -> asio::awaitable<unsigned> {
            const auto cf = co_await f.srv.read_frame();
            REQUIRE(cf.opcode == 8);
            co_await f.srv.send(frame(8, cf.payload));
            co_return cf.close_code();
        };
        auto t = co_await (f.client->shutdown() && peer());
        CHECK(t == 1003); // unsupported data (RFC 6455 7.4.1)
        const bool eof = co_await f.srv.at_eof();
        CHECK(eof);
    }());
}

TEST_CASE("websocket: a message over max_message_bytes fails with message_too_large and 1009", "[websocket]") {
    const bool fragmented = GENERATE(false, true);
    auto o = client_opts();
    o.max_message_bytes = 1000;
    raw_server_fixture f(o);
    run_co(f.io, [&]() -> asio::awaitable<void> {
        // Exactly the limit passes.
        co_await f.srv.send(frame(1, xml_of_size(1000)));
        const auto ok = co_await read_message(*f.client);
        CHECK(ok.size() == 1000);
        if (fragmented)
            co_await f.srv.send(frame(1, std::string(600, 'a'), false) + frame(0, std::string(600, 'b'), true));
        else
            co_await f.srv.send(frame(1, std::string(1001, 'a')));
        auto peer = [&]() -> asio::awaitable<unsigned> {
            const auto cf = co_await f.srv.read_frame();
            REQUIRE(cf.opcode == 8);
            co_return cf.close_code();
        };
        auto t = co_await (read_error(*f.client) && peer());
        CHECK(std::get<0>(t) == ws::errc::message_too_large);
        CHECK(std::get<1>(t) == 1009);
        const bool eof = co_await f.srv.at_eof(); // Beast's teardown: our FIN
        CHECK(eof);
    }());
}

TEST_CASE("websocket: invalid UTF-8 in a text message fails the read and sends 1007", "[websocket]") {
    raw_server_fixture f;
    run_co(f.io, [&]() -> asio::awaitable<void> {
        co_await f.srv.send(frame(1, "<a>\xff\xfe</a>"));
        auto peer = [&]() -> asio::awaitable<unsigned> {
            const auto cf = co_await f.srv.read_frame();
            REQUIRE(cf.opcode == 8);
            co_return cf.close_code();
        };
        auto t = co_await (read_error(*f.client) && peer());
        CHECK(std::get<0>(t));
        CHECK(std::get<1>(t) == 1007);
        const bool eof = co_await f.srv.at_eof();
        CHECK(eof);
    }());
}

TEST_CASE("websocket: write_messages hands N messages to the layer below in one write", "[websocket]") {
    asio::io_context io;
    std::size_t client_writes = 0, server_writes = 0;
    run_co(io, [&]() -> asio::awaitable<void> {
        auto sp = socket_pair(io);
    auto& c = sp.first;
    auto& s = sp.second;
        auto p = co_await ws_handshake(
            std::make_unique<counting_transport>(tls::make_tcp_transport(std::move(c)), &client_writes),
            std::make_unique<counting_transport>(tls::make_tcp_transport(std::move(s)), &server_writes));
        std::vector<std::string> msgs;
        for (int i = 0; i < 64; ++i) msgs.push_back("<iq id='" + std::to_string(i) + "' type='get'><ping xmlns='urn:xmpp:ping'/></iq>");
        msgs.push_back(xml_of_size(5000)); // bigger than the client's 1 KiB masking buffer
        const std::vector<std::string_view> views(msgs.begin(), msgs.end());

        client_writes = 0;
        co_await p.client->write_messages(views);
        CHECK(client_writes == 1);
        for (const auto& m : msgs) {
            const auto got = co_await read_message(*p.server);
            REQUIRE(got == m);
        }
        server_writes = 0;
        co_await p.server->write_messages(views);
        CHECK(server_writes == 1);
        for (const auto& m : msgs) {
            const auto got = co_await read_message(*p.client);
            REQUIRE(got == m);
        }
        client_writes = 0;
        co_await p.client->write(msgs.back());
        CHECK(client_writes == 1);
        const auto last = co_await read_message(*p.server);
        CHECK(last == msgs.back());
        const std::vector<std::string_view> none;
        co_await p.client->write_messages(none);
        CHECK(client_writes == 1);
    }());
}

// --- Closing -------------------------------------------------------------------------------

TEST_CASE("websocket: shutdown() runs the closing handshake; the peer reads eof", "[websocket]") {
    const bool from_client = GENERATE(true, false);
    asio::io_context io;
    run_co(io, [&]() -> asio::awaitable<void> {
        auto p = co_await plain_pair(io);
        auto& closer = from_client ? *p.client : *p.server;
        auto& other = from_client ? *p.server : *p.client;
        // The closer's own reader runs through the shutdown too.
        auto t = co_await (read_error(closer) && closer.shutdown() && read_error(other));
        CHECK(std::get<0>(t) == asio::error::eof);
        CHECK(std::get<1>(t) == asio::error::eof);
        const auto mine = co_await read_error(closer);
        CHECK(mine == asio::error::eof);
        co_await other.shutdown(); // already closed by the peer: nothing to do, no error
        co_await closer.shutdown(); // twice: no-op
        const auto w = co_await error_of(closer.write("<x/>"));
        CHECK(w == asio::error::not_connected);
        const auto w2 = co_await error_of(other.write("<x/>"));
        CHECK(w2 == asio::error::not_connected);
    }());
}

TEST_CASE("websocket: the Close frames on the wire, both directions", "[websocket]") {
    SECTION("we close: 1000, wait for the answer, then FIN") {
        raw_server_fixture f;
        run_co(f.io, [&]() -> asio::awaitable<void> {
            auto peer = [&]() -> asio::awaitable<raw_frame> {
                auto cf = co_await f.srv.read_frame();
                co_await sleep_for(100ms); // shutdown() waits for the answer
                co_await f.srv.send(frame(8, cf.payload));
                co_return cf;
            };
            const auto t0 = std::chrono::steady_clock::now();
            auto t = co_await (f.client->shutdown() && peer());
            CHECK(std::chrono::steady_clock::now() - t0 >= 100ms);
            CHECK(t.opcode == 8);
            CHECK(t.masked);
            CHECK(t.close_code() == 1000);
            const bool eof = co_await f.srv.at_eof();
            CHECK(eof);
        }());
    }
    SECTION("the peer closes: we answer with its code and shut down") {
        raw_server_fixture f;
        run_co(f.io, [&]() -> asio::awaitable<void> {
            co_await f.srv.send(frame(8, close_payload(1001) + "going away"));
            auto peer = [&]() -> asio::awaitable<raw_frame> { co_return co_await f.srv.read_frame(); };
            auto t = co_await (read_error(*f.client) && peer());
            CHECK(std::get<0>(t) == asio::error::eof);
            CHECK(std::get<1>(t).opcode == 8);
            CHECK(std::get<1>(t).close_code() == 1001); // echoed (RFC 6455 5.5.1)
            const bool eof = co_await f.srv.at_eof();
            CHECK(eof);
            co_await f.client->shutdown(); // nothing left to do
        }());
    }
    SECTION("the peer never answers: close_timeout bounds shutdown()") {
        auto o = client_opts();
        o.close_timeout = 300ms;
        raw_server_fixture f(o);
        run_co(f.io, [&]() -> asio::awaitable<void> {
            const auto t0 = std::chrono::steady_clock::now();
            auto peer = [&]() -> asio::awaitable<raw_frame> { co_return co_await f.srv.read_frame(); };
            // A reader that starts after the shutdown began gets eof (and does not spin).
            auto t = co_await (f.client->shutdown() && peer() && read_error(*f.client));
            const auto took = std::chrono::steady_clock::now() - t0;
            CHECK(std::get<0>(t).close_code() == 1000);
            CHECK(std::get<1>(t) == asio::error::eof);
            CHECK(took >= 250ms);
            CHECK(took < 3s);
            const bool eof = co_await f.srv.at_eof(); // the layer below was closed
            CHECK(eof);
        }());
    }
}

TEST_CASE("websocket: close() aborts pending waits and writes", "[websocket]") {
    asio::io_context io;
    run_co(io, [&]() -> asio::awaitable<void> {
        auto p = co_await plain_pair(io);
        auto closer = [&]() -> asio::awaitable<void> {
            co_await sleep_for(50ms);
            p.client->close();
        };
        auto t = co_await (error_of(p.client->wait_read()) && closer());
        CHECK(t == asio::error::operation_aborted);
        char b[8];
        error_code ec;
        CHECK(p.client->read_some(asio::buffer(b), ec) == 0);
        CHECK(ec == asio::error::operation_aborted);
        const auto w = co_await error_of(p.client->write("<x/>"));
        CHECK(w == asio::error::operation_aborted);
        const auto sd = co_await error_of(p.client->shutdown());
        CHECK(sd == asio::error::operation_aborted);

        // A write the peer never reads, aborted by close().
        auto q = co_await plain_pair(io);
        const std::string huge = xml_of_size(64 * 1024 * 1024);
        auto closer2 = [&]() -> asio::awaitable<void> {
            co_await sleep_for(100ms);
            q.server->close();
        };
        auto t2 = co_await (error_of(q.server->write(huge)) && closer2());
        CHECK(t2 == asio::error::operation_aborted);
    }());
}

TEST_CASE("websocket: Asio cancellation of wait_read", "[websocket]") {
    asio::io_context io;
    auto p = run_co(io, plain_pair(io));
    asio::cancellation_signal sig;
    bool done = false;
    std::exception_ptr ep;
    asio::co_spawn(io, p.client->wait_read(), asio::bind_cancellation_slot(sig.slot(), [&](std::exception_ptr e) {
                       done = true;
                       ep = e;
                   }));
    io.restart();
    io.run_for(50ms);
    CHECK_FALSE(done);
    sig.emit(asio::cancellation_type::terminal);
    io.run_for(1s);
    REQUIRE(done);
    REQUIRE(ep);
    try {
        std::rethrow_exception(ep);
    } catch (const system_error& e) {
        CHECK(e.code() == asio::error::operation_aborted);
    }
}

// --- URLs, documents, errors -------------------------------------------------------------------

TEST_CASE("websocket: parse_url (RFC 6455 3)", "[websocket]") {
    struct good {
        const char* in;
        bool secure;
        const char* host;
        std::uint16_t port;
        const char* target;
    };
    const good goods[] = {
        {"wss://example.org/xmpp-websocket", true, "example.org", 443, "/xmpp-websocket"},
        {"ws://example.org", false, "example.org", 80, "/"},
        {"WSS://Chat.Example.ORG:5281/ws?x=1&y=2", true, "chat.example.org", 5281, "/ws?x=1&y=2"},
        {"wss://example.org?q", true, "example.org", 443, "/?q"},
        {"ws://[::1]:8080/a", false, "::1", 8080, "/a"},
        {"wss://[2001:db8::1]/", true, "2001:db8::1", 443, "/"},
        {"wss://192.0.2.1:443/p", true, "192.0.2.1", 443, "/p"},
        {"wss://example.org:/p", true, "example.org", 443, "/p"},
        {"wss://xn--mnchen-3ya.example/ws", true, "xn--mnchen-3ya.example", 443, "/ws"},
    };
    for (const auto& g : goods) {
        INFO(g.in);
        error_code ec;
        const auto u = ws::parse_url(g.in, ec);
        REQUIRE_FALSE(ec);
        CHECK(u.secure == g.secure);
        CHECK(u.host == g.host);
        CHECK(u.port == g.port);
        CHECK(u.target == g.target);
    }
    const char* bads[] = {
        "https://example.org/",  "example.org/ws",        "wss:/example.org",       "wss://",
        "wss:///path",           "wss://:443/",           "wss://user@example.org/", "wss://example.org/#frag",
        "wss://example.org:0/",  "wss://example.org:65536/", "wss://example.org:44a/", "wss://[::1/",
        "wss://[zz::1]/",        "wss://exa mple.org/",   "wss://example.org/a b",  "wss://example.org/\r\nX: y",
        "wss://::1/",            "wss://example.org/\xc3\xa9",
    };
    for (const char* b : bads) {
        INFO(b);
        error_code ec;
        const auto u = ws::parse_url(b, ec);
        CHECK(ec == ws::errc::bad_url);
        CHECK(u.host.empty());
    }
}

TEST_CASE("websocket: XRD host-meta documents (XEP-0156, RFC 6415)", "[websocket]") {
    namespace d = ws::detail;
    auto r = d::parse_xrd(R"(<?xml version='1.0' encoding='utf-8'?>
<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>
  <Link rel="urn:xmpp:alt-connections:xbosh" href="https://web.example.com:5280/bosh" />
  <Link rel="urn:xmpp:alt-connections:websocket" href="wss://web.example.com:443/ws" />
  <Link rel="urn:xmpp:alt-connections:websocket" href="wss://b.example.com/ws" />
  <Link rel="urn:xmpp:alt-connections:websocket" />
  <Other rel="urn:xmpp:alt-connections:websocket" href="wss://not-a-link.example/" />
</XRD>)");
    CHECK(r.parsed);
    CHECK(r.hrefs == std::vector<std::string>{"wss://web.example.com:443/ws", "wss://b.example.com/ws"});

    // A prefixed XRD; a Link of another namespace is not one.
    r = d::parse_xrd(R"(<x:XRD xmlns:x='http://docs.oasis-open.org/ns/xri/xrd-1.0' xmlns='urn:other'>
  <x:Link rel='urn:xmpp:alt-connections:websocket' href='wss://a.example/'/>
  <Link rel='urn:xmpp:alt-connections:websocket' href='wss://wrong-ns.example/'/>
</x:XRD>)");
    CHECK(r.parsed);
    CHECK(r.hrefs == std::vector<std::string>{"wss://a.example/"});

    r = d::parse_xrd("<XRD xmlns='urn:not-xrd'><Link rel='urn:xmpp:alt-connections:websocket' href='wss://a/'/></XRD>");
    CHECK_FALSE(r.parsed);
    r = d::parse_xrd("<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'><Link");
    CHECK_FALSE(r.parsed);
    CHECK(r.error.find("not well-formed") != std::string::npos);
    r = d::parse_xrd("");
    CHECK_FALSE(r.parsed);

    // Entities declared in a DOCTYPE are never expanded (no "billion laughs").
    r = d::parse_xrd(R"(<!DOCTYPE XRD [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'><Link rel='urn:xmpp:alt-connections:websocket' href='wss://x/&b;'/></XRD>)");
    CHECK(r.parsed);
    REQUIRE(r.hrefs.size() == 1);
    CHECK(r.hrefs[0].size() < 20);
}

TEST_CASE("websocket: JRD host-meta.json documents (XEP-0156, RFC 6415 A)", "[websocket]") {
    namespace d = ws::detail;
    auto r = d::parse_jrd(R"({
  "subject": "example.com",
  "links": [
    {"rel": "urn:xmpp:alt-connections:xbosh", "href": "https://web.example.com:5280/bosh"},
    {"rel": "urn:xmpp:alt-connections:websocket", "href": "wss://web.example.com:443/ws"},
    {"rel": "urn:xmpp:alt-connections:websocket", "href": 5},
    {"rel": "urn:xmpp:alt-connections:websocket"},
    "not an object",
    {"rel": "urn:xmpp:alt-connections:websocket", "href": "wss://b.example.com/ws"}
  ]
})");
    CHECK(r.parsed);
    CHECK(r.hrefs == std::vector<std::string>{"wss://web.example.com:443/ws", "wss://b.example.com/ws"});
    r = d::parse_jrd(R"({"links": {}})");
    CHECK(r.parsed);
    CHECK(r.hrefs.empty());
    r = d::parse_jrd("[1, 2]");
    CHECK_FALSE(r.parsed);
    r = d::parse_jrd("{\"links\": [");
    CHECK_FALSE(r.parsed);
    CHECK(r.error.find("not valid JSON") != std::string::npos);
    r = d::parse_jrd(std::string(100, '[') + std::string(100, ']')); // deeper than 32
    CHECK_FALSE(r.parsed);
}

TEST_CASE("websocket: the xmpp.ws error category", "[websocket]") {
    const error_code ec = ws::errc::no_subprotocol;
    CHECK(std::string(ec.category().name()) == "xmpp.ws");
    CHECK(ec.message().find("xmpp") != std::string::npos);
    for (int v = 1; v <= static_cast<int>(ws::errc::discovery_failed); ++v)
        CHECK(ws::make_error_code(static_cast<ws::errc>(v)).message() != "unknown WebSocket error");
    CHECK(ws::make_error_code(static_cast<ws::errc>(99)).message() == "unknown WebSocket error");
}
