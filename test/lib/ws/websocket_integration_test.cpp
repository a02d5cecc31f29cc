// RFC 7395 against Prosody's mod_websocket and ejabberd (ws:// and wss://), and XEP-0156
// discovery against an HTTPS server of the test's own (our TLS transport, a
// test certificate) with the domain resolved through a real dnsmasq.
#include "support.hpp"

#include "testbed/dnsmasq.hpp"
#include "testbed/pki.hpp"
#include "testbed/servers.hpp"

#include <xmpp/net/resolver.hpp>
#include <xmpp/tls.hpp>
#include <xmpp/server.hpp>
#include <xmpp/session.hpp>
#include <xmpp/websocket.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <map>

using namespace ws_test;
namespace ws = xmpp::ws;
namespace tls = xmpp::tls;
namespace tb = xmpp::testbed;

namespace {

tls::context client_ctx(const std::filesystem::path& ca) {
    tls::client_options o;
    o.ca_file = ca.string();
    o.use_system_store = false;
    return tls::context::make_client(o);
}

} // namespace

// --- Prosody ----------------------------------------------------------------------------

namespace {

// An RFC 7395 stream opened and closed against a server's endpoint.
void open_and_close(const tb::server& srv, bool secure) {
    INFO((secure ? "wss" : "ws"));
    const auto ctx = client_ctx(srv.ca_file());
    const unsigned short port = secure ? srv.websocket_tls_port() : srv.websocket_port();
    REQUIRE(port != 0);
    asio::io_context io;
    run_co(io, [&]() -> asio::awaitable<void> {
        tcp::socket sock(io);
        co_await sock.async_connect(tcp::endpoint(asio::ip::address_v4::loopback(), port), asio::use_awaitable);
        transport_ptr lower;
        if (secure)
            lower = co_await tls::connect(std::move(sock), ctx, "localhost");
        else
            lower = tls::make_tcp_transport(std::move(sock));
        ws::options o;
        o.host = "localhost:" + std::to_string(port);
        o.target = "/xmpp-websocket";
        auto t = co_await ws::connect(std::move(lower), o);
        CHECK(t->is_secure() == secure);
        if (secure) {
            CHECK(t->peer_verified());
            CHECK(t->channel_binding("tls-exporter").size() == 32);
        }

        co_await t->write("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>");
        const auto open = co_await read_message(*t);
        INFO(open);
        CHECK(open.rfind("<open", 0) == 0);
        CHECK(open.find("urn:ietf:params:xml:ns:xmpp-framing") != std::string::npos);
        CHECK(open.find("localhost") != std::string::npos);
        const auto features = co_await read_message(*t);
        INFO(features);
        CHECK(features.find("features") != std::string::npos);
        CHECK(features.find("urn:ietf:params:xml:ns:xmpp-sasl") != std::string::npos);

        co_await t->write("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>");
        const auto close = co_await read_message(*t);
        INFO(close);
        CHECK(close.rfind("<close", 0) == 0);
        co_await t->shutdown();
    }());
}

// A request for another path than the endpoint's.
void wrong_path(const tb::server& srv, bool secure) {
    INFO((secure ? "wss" : "ws"));
    const auto ctx = client_ctx(srv.ca_file());
    asio::io_context io;
    run_co(io, [&]() -> asio::awaitable<void> {
        tcp::socket sock(io);
        const unsigned short port = secure ? srv.websocket_tls_port() : srv.websocket_port();
        co_await sock.async_connect(tcp::endpoint(asio::ip::address_v4::loopback(), port), asio::use_awaitable);
        transport_ptr lower;
        if (secure)
            lower = co_await tls::connect(std::move(sock), ctx, "localhost");
        else
            lower = tls::make_tcp_transport(std::move(sock));
        ws::options o;
        o.host = "localhost";
        o.target = "/no-such-endpoint";
        const auto f = co_await failure_of(ws::connect(std::move(lower), o));
        INFO(f.second);
        CHECK(f.first == ws::errc::handshake_failed);
        CHECK(f.second.find("HTTP 404") != std::string::npos);
    }());
}

} // namespace

TEST_CASE("websocket: Prosody mod_websocket, ws:// and wss://", "[websocket][prosody]") {
    tb::prosody_options po;
    po.websocket = true;
    tb::prosody_server srv(po);
    for (const bool secure : {false, true}) {
        open_and_close(srv, secure);
        wrong_path(srv, secure);
    }
}

TEST_CASE("websocket: ejabberd ejabberd_http_ws, ws:// and wss://", "[websocket][ejabberd]") {
    tb::ejabberd_options eo;
    eo.websocket = true;
    tb::ejabberd_server srv(eo);
    for (const bool secure : {false, true}) {
        open_and_close(srv, secure);
        wrong_path(srv, secure);
    }
}

// --- XEP-0156 discovery -------------------------------------------------------------

namespace {

struct document {
    int status = 200;
    std::string body;
    std::string headers; // extra header lines, each ending in CRLF
};

// A small HTTPS/1.1 server: one request per connection, answers from `docs`
// by path (404 otherwise), records each request head.
class https_server {
public:
    https_server(asio::io_context& io, const tb::pki::leaf& cert)
        : acc_(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0)), ctx_(make_ctx(cert)) {
        asio::co_spawn(io, accept_loop(), asio::detached);
    }

    std::uint16_t port() const { return acc_.local_endpoint().port(); }

    std::map<std::string, document> docs;
    std::vector<std::string> requests;
    bool silent = false; // accept TCP, then say nothing

private:
    static tls::context make_ctx(const tb::pki::leaf& l) {
        tls::server_options o;
        o.cert_file = l.cert.string();
        o.key_file = l.key.string();
        return tls::context::make_server(o);
    }

    asio::awaitable<void> accept_loop() {
        for (;;) {
            auto sock = co_await acc_.async_accept(asio::use_awaitable);
            asio::co_spawn(acc_.get_executor(), serve(std::move(sock)), asio::detached);
        }
    }

    asio::awaitable<void> serve(tcp::socket sock) {
        try {
            if (silent) {
                asio::steady_timer t(sock.get_executor(), std::chrono::seconds(30));
                co_await t.async_wait(asio::use_awaitable);
                co_return;
            }
            auto t = co_await tls::accept(std::move(sock), ctx_);
            std::string head;
            char buf[4096];
            while (head.find("\r\n\r\n") == std::string::npos) {
                error_code ec;
                const std::size_t n = t->read_some(asio::buffer(buf), ec);
                if (ec == asio::error::would_block) {
                    co_await t->wait_read();
                    continue;
                }
                if (ec) co_return;
                head.append(buf, n);
            }
            requests.push_back(head);
            const auto sp1 = head.find(' ');
            const std::string path = head.substr(sp1 + 1, head.find(' ', sp1 + 1) - sp1 - 1);
            const auto it = docs.find(path);
            const document d = it != docs.end() ? it->second : document{404, "not here", ""};
            const std::string res = "HTTP/1.1 " + std::to_string(d.status) + " Whatever\r\nContent-Length: " +
                                    std::to_string(d.body.size()) + "\r\nConnection: close\r\n" + d.headers + "\r\n" +
                                    d.body;
            co_await t->write(res);
            co_await t->shutdown();
        } catch (const system_error&) {
        }
    }

    tcp::acceptor acc_;
    tls::context ctx_;
};

struct discovery_fixture {
    tb::temp_dir dir{"xmpp-ws-discovery"};
    tb::pki ca{dir.path() / "pki"};
    tb::pki::leaf cert = ca.issue("xmpp.test");
    tb::pki::leaf wrong = ca.issue("evil.test");
    tb::dnsmasq dns{[] {
        tb::dnsmasq_options o;
        o.zones = {"test"};
        o.hosts = {{"xmpp.test", "127.0.0.1", ""}};
        return o;
    }()};
    asio::io_context io;

    ws::discovery_options options(const https_server& s) const {
        ws::discovery_options o;
        o.dns.servers = dns.servers();
        o.dns.timeout = std::chrono::milliseconds(1000);
        o.port = s.port();
        o.tls.ca_file = ca.ca_cert().string();
        o.tls.use_system_store = false;
        o.timeout = std::chrono::seconds(5);
        return o;
    }
};

const std::string xrd_head = "<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n";

std::string xrd_link(const std::string& rel, const std::string& href) {
    return "  <Link rel='" + rel + "' href='" + href + "'/>\n";
}

std::string jrd(const std::vector<std::pair<std::string, std::string>>& links) {
    std::string s = "{\"links\": [";
    for (std::size_t i = 0; i < links.size(); ++i)
        s += std::string(i ? "," : "") + "{\"rel\": \"" + links[i].first + "\", \"href\": \"" + links[i].second + "\"}";
    return s + "]}";
}

const std::string ws_rel = "urn:xmpp:alt-connections:websocket";

} // namespace

TEST_CASE("websocket: XEP-0156 discovery from host-meta and host-meta.json", "[websocket][discovery]") {
    discovery_fixture f;
    https_server srv(f.io, f.cert);

    SECTION("both documents: XRD links first, no duplicates, only wss://") {
        srv.docs["/.well-known/host-meta"] = {200,
                                              xrd_head + xrd_link("urn:xmpp:alt-connections:xbosh", "https://xmpp.test/bosh") +
                                                  xrd_link(ws_rel, "wss://xmpp.test/xmpp-websocket") +
                                                  xrd_link(ws_rel, "ws://xmpp.test/plain") + "</XRD>",
                                              "Content-Type: application/xrd+xml\r\n"};
        srv.docs["/.well-known/host-meta.json"] = {
            200, jrd({{ws_rel, "wss://other.test:5281/ws"}, {ws_rel, "wss://xmpp.test/xmpp-websocket"}}), ""};
        const auto links = run_co(f.io, ws::discover("xmpp.test", f.options(srv)));
        CHECK(links == std::vector<std::string>{"wss://xmpp.test/xmpp-websocket", "wss://other.test:5281/ws"});
        REQUIRE(srv.requests.size() == 2);
        for (const auto& r : srv.requests) {
            CHECK(header_value(r, "Host") == "xmpp.test:" + std::to_string(srv.port()));
            CHECK(r.find(" HTTP/1.1\r\n") != std::string::npos);
        }
    }
    SECTION("only the JSON document") {
        srv.docs["/.well-known/host-meta.json"] = {200, jrd({{ws_rel, "wss://xmpp.test/ws"}}), ""};
        const auto links = run_co(f.io, ws::discover("xmpp.test", f.options(srv)));
        CHECK(links == std::vector<std::string>{"wss://xmpp.test/ws"});
    }
    SECTION("neither: discovery_failed saying what each lookup gave") {
        srv.docs["/.well-known/host-meta.json"] = {200, "{\"links\": []}", ""};
        const auto fl = run_co(f.io, failure_of(ws::discover("xmpp.test", f.options(srv))));
        CHECK(fl.first == ws::errc::discovery_failed);
        INFO(fl.second);
        CHECK(fl.second.find("/.well-known/host-meta: HTTP 404") != std::string::npos);
        CHECK(fl.second.find("/.well-known/host-meta.json: 0 websocket link(s)") != std::string::npos);
    }
    SECTION("ws:// links are ignored unless allow_insecure") {
        srv.docs["/.well-known/host-meta"] = {200, xrd_head + xrd_link(ws_rel, "ws://xmpp.test:5280/ws") + "</XRD>", ""};
        srv.docs["/.well-known/host-meta.json"] = {200, jrd({{ws_rel, "not a url"}}), ""};
        const auto fl = run_co(f.io, failure_of(ws::discover("xmpp.test", f.options(srv))));
        CHECK(fl.first == ws::errc::discovery_failed);
        INFO(fl.second);
        CHECK(fl.second.find("1 ws:// link(s) ignored") != std::string::npos);
        CHECK(fl.second.find("1 link(s) not a ws:// or wss:// URL") != std::string::npos);
        auto o = f.options(srv);
        o.allow_insecure = true;
        const auto links = run_co(f.io, ws::discover("xmpp.test", o));
        CHECK(links == std::vector<std::string>{"ws://xmpp.test:5280/ws"});
    }
    SECTION("redirects: a path on the same host is followed, http:// is not, loops end") {
        srv.docs["/.well-known/host-meta"] = {301, "", "Location: /meta/xrd.xml\r\n"};
        srv.docs["/meta/xrd.xml"] = {200, xrd_head + xrd_link(ws_rel, "wss://xmpp.test/moved") + "</XRD>", ""};
        srv.docs["/.well-known/host-meta.json"] = {302, "", "Location: http://xmpp.test/host-meta.json\r\n"};
        const auto links = run_co(f.io, ws::discover("xmpp.test", f.options(srv)));
        CHECK(links == std::vector<std::string>{"wss://xmpp.test/moved"});

        srv.docs["/.well-known/host-meta"] = {307, "", "Location: https://xmpp.test:" + std::to_string(srv.port()) + "/loop\r\n"};
        srv.docs["/loop"] = {308, "", "Location: /loop\r\n"};
        const auto fl = run_co(f.io, failure_of(ws::discover("xmpp.test", f.options(srv))));
        CHECK(fl.first == ws::errc::discovery_failed);
        INFO(fl.second);
        CHECK(fl.second.find("more than 2 redirects") != std::string::npos);
        CHECK(fl.second.find("not followed (only https)") != std::string::npos);
    }
    SECTION("a document over max_document_bytes lists nothing") {
        srv.docs["/.well-known/host-meta"] = {
            200, xrd_head + std::string(5000, ' ') + xrd_link(ws_rel, "wss://xmpp.test/big") + "</XRD>", ""};
        auto o = f.options(srv);
        o.max_document_bytes = 4096;
        const auto fl = run_co(f.io, failure_of(ws::discover("xmpp.test", o)));
        CHECK(fl.first == ws::errc::discovery_failed);
        INFO(fl.second);
        CHECK(fl.second.find("larger than 4096 bytes") != std::string::npos);
    }
}

TEST_CASE("websocket: XEP-0156 discovery failures of the transport", "[websocket][discovery]") {
    discovery_fixture f;

    SECTION("a certificate for another name is refused") {
        https_server srv(f.io, f.wrong);
        srv.docs["/.well-known/host-meta.json"] = {200, jrd({{ws_rel, "wss://xmpp.test/ws"}}), ""};
        const auto fl = run_co(f.io, failure_of(ws::discover("xmpp.test", f.options(srv))));
        CHECK(fl.first == tls::errc::hostname_mismatch);
        INFO(fl.second);
        CHECK(srv.requests.empty()); // nothing was asked over the unverified connection
    }
    SECTION("a server that never answers: the deadline") {
        https_server srv(f.io, f.cert);
        srv.silent = true;
        auto o = f.options(srv);
        o.timeout = std::chrono::milliseconds(500);
        const auto t0 = std::chrono::steady_clock::now();
        const auto fl = run_co(f.io, failure_of(ws::discover("xmpp.test", o)));
        const auto took = std::chrono::steady_clock::now() - t0;
        CHECK(fl.first == asio::error::timed_out);
        CHECK(took >= std::chrono::milliseconds(450));
        CHECK(took < std::chrono::seconds(3));
    }
    SECTION("an unknown domain: the DNS error") {
        https_server srv(f.io, f.cert);
        const auto fl = run_co(f.io, failure_of(ws::discover("missing.test", f.options(srv))));
        CHECK(fl.first == xmpp::net::dns_errc::not_found);
    }
    SECTION("cancellation aborts the lookups") {
        https_server srv(f.io, f.cert);
        srv.silent = true;
        const auto t0 = std::chrono::steady_clock::now();
        const auto fl = run_co(f.io, [&]() -> asio::awaitable<std::pair<error_code, std::string>> {
            using namespace asio::experimental::awaitable_operators;
            asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(200));
            auto r = co_await (failure_of(ws::discover("xmpp.test", f.options(srv))) || t.async_wait(asio::use_awaitable));
            CHECK(r.index() == 1); // the timer won; discover() was cancelled
            co_return std::pair<error_code, std::string>{};
        }());
        (void)fl;
        // discover() (deadline 5 s) ended with the cancellation, not its deadline.
        CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
    }
}

TEST_CASE("websocket: a session with websocket = true discovers our server through host-meta and logs in",
          "[websocket][discovery]") {
    discovery_fixture f;
    https_server web(f.io, f.cert);
    xmpp::server_options so;
    so.domain = "xmpp.test";
    xmpp::tls::server_options t;
    t.cert_file = f.cert.cert.string();
    t.key_file = f.cert.key.string();
    so.tls = xmpp::tls::context::make_server(t);
    so.sasl.scram_lookup = [](std::string user, std::string hash) -> asio::awaitable<std::optional<xmpp::sasl::scram_secret>> {
        if (user != "alice") co_return std::nullopt;
        error_code ec;
        co_return xmpp::sasl::make_scram_secret(hash, "alice-pass", "", 4096, ec);
    };
    xmpp::server srv(f.io.get_executor(), so);
    srv.listen({asio::ip::make_address("127.0.0.1"), 0}, xmpp::listener_kind::wss);
    std::vector<xmpp::session> kept;
    srv.start([&](xmpp::session s) { kept.push_back(std::move(s)); });
    // A plain ws:// link first: skipped (TLS required); then ours.
    web.docs["/.well-known/host-meta"] = {
        200, xrd_head + xrd_link(ws_rel, "ws://xmpp.test:1/insecure") +
                 xrd_link(ws_rel, "wss://xmpp.test:" + std::to_string(srv.port(0)) + "/xmpp-websocket") + "</XRD>", ""};
    xmpp::session_options o;
    o.address = xmpp::jid::parse("alice@xmpp.test");
    o.password = "alice-pass";
    o.websocket = true;
    o.discovery = f.options(web);
    o.dns = o.discovery.dns;
    o.tls = o.discovery.tls;
    xmpp::session c(f.io.get_executor(), o);
    const auto ec = run_co(f.io, [&]() -> asio::awaitable<error_code> {
        auto [e] = co_await c.async_connect(asio::as_tuple(asio::use_awaitable));
        co_return e;
    }());
    INFO(c.last_error().what());
    CHECK_FALSE(ec);
    CHECK(c.address().bare().str() == "alice@xmpp.test");
    CHECK(has_all(c.state(), xmpp::session_state::secure | xmpp::session_state::ready));
    REQUIRE(kept.size() == 1);
    CHECK(kept[0].peer_address() == c.address());
}
