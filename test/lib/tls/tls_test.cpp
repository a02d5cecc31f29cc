// TLS and TCP transports: in-process client and server over loopback, and a
// third-party peer (openssl s_server).
#include "test_catch.hpp"
#include "idle_transport.hpp"

#include "testbed/pki.hpp"
#include "testbed/process.hpp"

#include <xmpp/tls.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

using namespace xmpp;
namespace tls = xmpp::tls;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

// --- PKI, made once per process ----------------------------------------------

struct test_pki {
    testbed::temp_dir dir{"xmpp-tls-test"};
    testbed::pki ca{dir.path() / "pki"};
    testbed::pki::leaf localhost = ca.issue("localhost");
    testbed::pki::leaf evil = ca.issue("evil.example");
    testbed::pki::leaf self_signed = ca.issue("localhost", true);
    testbed::pki::leaf client = ca.issue("client.example");
};

const test_pki& pki() {
    static test_pki p;
    return p;
}

// Leaves for the identity types of RFC 6120 13.7.2.1, signed by the same CA;
// made on first use (~30 ms each).
struct identity_pki {
    using spec = testbed::pki::leaf_spec;
    using P = testbed::pki;
    const testbed::pki& ca = pki().ca;
    testbed::pki::leaf srv_only = ca.issue(spec{"srv-only", "", {P::srv_id("srv.example")}});
    testbed::pki::leaf srv_s2s = ca.issue(spec{"srv-s2s", "", {P::srv_id("srv.example", "_xmpp-server")}});
    testbed::pki::leaf addr_only = ca.issue(spec{"addr-only", "", {P::xmpp_addr("addr.example")}});
    testbed::pki::leaf addr_idn = ca.issue(spec{"addr-idn", "", {P::xmpp_addr("m\xc3\xbcnchen.example")}});
    testbed::pki::leaf addr_user = ca.issue(spec{"addr-user", "", {P::xmpp_addr("user@addr.example")}});
    testbed::pki::leaf wildcard = ca.issue(spec{"wildcard", "", {P::dns_id("*.wild.example")}});
    testbed::pki::leaf cn_only = ca.issue(spec{"cn-only", "cn.example", {}});
    testbed::pki::leaf cn_and_srv = ca.issue(spec{"cn-and-srv", "cn.example", {P::srv_id("other.example")}});
    testbed::pki::leaf cn_and_addr = ca.issue(spec{"cn-and-addr", "cn.example", {P::xmpp_addr("other.example")}});
    testbed::pki::leaf cn_and_uri = ca.issue(spec{"cn-and-uri", "cn.example", {P::uri_id("xmpp:other.example")}});
};

const identity_pki& id_pki() {
    static identity_pki p;
    return p;
}

// Leaves signed with RSASSA-PSS by an RSA CA of their own (RFC 5929 4.1
// reads the hash from the PSS parameters).
struct pss_pki {
    using spec = testbed::pki::leaf_spec;
    testbed::pki ca{pki().dir.path() / "pss", testbed::pki::ca_key::rsa_2048};
    testbed::pki::leaf sha384 = ca.issue(spec{"pss-sha384", "localhost", {"DNS:localhost"}, "sha384", true});
    // No hashAlgorithm in the parameters: the DEFAULT, SHA-1.
    testbed::pki::leaf sha1 = ca.issue(spec{"pss-sha1", "localhost", {"DNS:localhost"}, "sha1", true});
};

const pss_pki& pss() {
    static pss_pki p;
    return p;
}

tls::client_options trusting_client() {
    tls::client_options o;
    o.ca_file = pki().ca.ca_cert().string();
    o.use_system_store = false;
    return o;
}

tls::server_options server_with(const testbed::pki::leaf& l) {
    tls::server_options o;
    o.cert_file = l.cert.string();
    o.key_file = l.key.string();
    return o;
}

// --- Running coroutines ------------------------------------------------------

template <class T>
struct outcome {
    bool done = false;
    std::optional<T> value;
    std::exception_ptr error;

    T& get() {
        REQUIRE(done);
        if (error) std::rethrow_exception(error);
        return *value;
    }
    error_code code() const {
        REQUIRE(done);
        REQUIRE(error);
        try {
            std::rethrow_exception(error);
        } catch (const boost::system::system_error& e) {
            return e.code();
        } catch (...) {
        }
        FAIL("not a system_error");
        return {};
    }
    std::string what() const {
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            return e.what();
        }
    }
};

struct none {};

template <class T>
void spawn(asio::io_context& io, asio::awaitable<T> a, outcome<T>& o) {
    asio::co_spawn(io, std::move(a), [&o](std::exception_ptr e, T v) {
        o.done = true;
        if (e)
            o.error = e;
        else
            o.value = std::move(v);
    });
}

void spawn(asio::io_context& io, asio::awaitable<void> a, outcome<none>& o) {
    asio::co_spawn(io, std::move(a), [&o](std::exception_ptr e) {
        o.done = true;
        if (e)
            o.error = e;
        else
            o.value = none{};
    });
}

// Runs until no work is left, with a bound so that a bug hangs no test.
void run(asio::io_context& io, std::chrono::seconds limit = 30s) {
    io.restart();
    io.run_for(limit);
}

// A connected loopback pair (the kernel completes the TCP handshake).
std::pair<tcp::socket, tcp::socket> socket_pair(asio::io_context& io) {
    tcp::acceptor acc(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    tcp::socket c(io);
    c.connect(acc.local_endpoint());
    tcp::socket s = acc.accept();
    return {std::move(c), std::move(s)};
}

using transport_ptr = std::unique_ptr<transport>;

struct handshake_result {
    outcome<transport_ptr> client, server;
};

handshake_result handshake(asio::io_context& io, const tls::context& cctx, const tls::context& sctx,
                           std::string name = "localhost") {
    auto [c, s] = socket_pair(io);
    handshake_result r;
    spawn(io, tls::connect(std::move(c), cctx, name), r.client);
    spawn(io, tls::accept(std::move(s), sctx), r.server);
    run(io);
    return r;
}

struct tls_pair {
    transport_ptr client, server;
};

tls_pair connected(asio::io_context& io, const tls::context& cctx, const tls::context& sctx,
                   std::string name = "localhost") {
    auto r = handshake(io, cctx, sctx, std::move(name));
    return {std::move(r.client.get()), std::move(r.server.get())};
}

// Reads exactly n bytes.
asio::awaitable<std::string> read_n(transport& t, std::size_t n) {
    std::string out;
    std::vector<char> buf(65536);
    while (out.size() < n) {
        error_code ec;
        const auto k = t.read_some(asio::buffer(buf.data(), std::min(buf.size(), n - out.size())), ec);
        if (ec == asio::error::would_block) {
            co_await t.wait_read();
            continue;
        }
        if (ec) throw boost::system::system_error(ec);
        out.append(buf.data(), k);
    }
    co_return out;
}

// Reads until an error; returns the data and that error.
asio::awaitable<std::pair<std::string, error_code>> read_to_end(transport& t) {
    std::string out;
    char buf[4096];
    for (;;) {
        error_code ec;
        const auto k = t.read_some(asio::buffer(buf), ec);
        if (ec == asio::error::would_block) {
            co_await t.wait_read();
            continue;
        }
        if (ec) co_return std::pair{out, ec};
        out.append(buf, k);
    }
}

std::string random_bytes(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (auto& ch : s) ch = static_cast<char>(rng());
    return s;
}

std::string lower(std::string s) {
    for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return s;
}

std::string hex(const std::vector<std::uint8_t>& v) {
    static const char* digits = "0123456789ABCDEF";
    std::string s;
    for (auto b : v) {
        s += digits[b >> 4];
        s += digits[b & 15];
    }
    return s;
}

// The output of a shell command (for openssl CLI figures).
std::string shell(const std::string& cmd) {
    std::string out;
    if (FILE* f = ::popen(cmd.c_str(), "r")) {
        char buf[512];
        while (std::fgets(buf, sizeof buf, f)) out += buf;
        ::pclose(f);
    }
    return out;
}

std::string file_text(const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

} // namespace

// --- Errors and contexts -----------------------------------------------------

TEST_CASE("tls::errc: category and messages", "[tls]") {
    error_code ec = tls::errc::hostname_mismatch;
    CHECK(std::string(ec.category().name()) == "xmpp.tls");
    CHECK(ec.message() == "TLS certificate does not match the server name");
    CHECK(error_code(tls::errc::stream_truncated).message().find("close_notify") != std::string::npos);
    for (int v = 1; v <= static_cast<int>(tls::errc::invalid_configuration); ++v)
        CHECK(error_code(v, tls::category()).message().find("unknown") == std::string::npos);
    CHECK(error_code(99, tls::category()).message() == "unknown TLS error 99");
}

TEST_CASE("tls::context: bad configuration gives invalid_configuration with the reason", "[tls]") {
    auto code_and_what = [](auto&& f) -> std::pair<error_code, std::string> {
        try {
            f();
        } catch (const boost::system::system_error& e) {
            return {e.code(), e.what()};
        }
        return {};
    };
    SECTION("missing CA file") {
        auto o = trusting_client();
        o.ca_file = "/nonexistent/ca.pem";
        auto [ec, what] = code_and_what([&] { tls::context::make_client(o); });
        CHECK(ec == tls::errc::invalid_configuration);
        CHECK(what.find("/nonexistent/ca.pem") != std::string::npos);
    }
    SECTION("key does not match the certificate") {
        auto o = server_with(pki().localhost);
        o.key_file = pki().evil.key.string();
        auto [ec, what] = code_and_what([&] { tls::context::make_server(o); });
        CHECK(ec == tls::errc::invalid_configuration);
        CHECK(what.find("does not match") != std::string::npos);
    }
    SECTION("a server needs a certificate") {
        auto [ec, what] = code_and_what([&] { tls::context::make_server({}); });
        CHECK(ec == tls::errc::invalid_configuration);
    }
    SECTION("a file that is not PEM") {
        auto o = server_with(pki().localhost);
        o.cert_file = "/etc/hostname";
        auto [ec, what] = code_and_what([&] { tls::context::make_server(o); });
        CHECK(ec == tls::errc::invalid_configuration);
        CHECK(what.find("/etc/hostname") != std::string::npos);
    }
    SECTION("client certificate without key") {
        auto o = trusting_client();
        o.client_cert_file = pki().client.cert.string();
        auto [ec, what] = code_and_what([&] { tls::context::make_client(o); });
        CHECK(ec == tls::errc::invalid_configuration);
    }
    SECTION("versions") {
        auto o = trusting_client();
        o.min_version = 0x0200;
        CHECK(code_and_what([&] { tls::context::make_client(o); }).first == tls::errc::invalid_configuration);
        o.min_version = 0x0304;
        o.max_version = 0x0303;
        CHECK(code_and_what([&] { tls::context::make_client(o); }).first == tls::errc::invalid_configuration);
        o.min_version = 0x0303;
        o.max_version = 0x0303;
        CHECK_NOTHROW(tls::context::make_client(o));
        o.min_version = 0x0304;
        o.max_version = 0;
        CHECK_NOTHROW(tls::context::make_client(o));
    }
    SECTION("TLS 1.0 and 1.1 are refused (RFC 8996), client and server, min and max") {
        for (int v : {0x0301, 0x0302}) {
            INFO("version " << v);
            auto o = trusting_client();
            o.min_version = v;
            auto [ec, what] = code_and_what([&] { tls::context::make_client(o); });
            CHECK(ec == tls::errc::invalid_configuration);
            CHECK(what.find("RFC 8996") != std::string::npos);
            CHECK(what.find("0x030") != std::string::npos); // names the version
            o.min_version = 0x0303;
            o.max_version = v;
            CHECK(code_and_what([&] { tls::context::make_client(o); }).first == tls::errc::invalid_configuration);
            auto so = server_with(pki().localhost);
            so.min_version = v;
            CHECK(code_and_what([&] { tls::context::make_server(so); }).first == tls::errc::invalid_configuration);
        }
    }
    SECTION("ALPN names") {
        auto o = trusting_client();
        o.alpn = {""};
        CHECK(code_and_what([&] { tls::context::make_client(o); }).first == tls::errc::invalid_configuration);
        o.alpn = {std::string(256, 'x')};
        CHECK(code_and_what([&] { tls::context::make_client(o); }).first == tls::errc::invalid_configuration);
    }
    SECTION("valid contexts") {
        auto c = tls::context::make_client(trusting_client());
        auto s = tls::context::make_server(server_with(pki().localhost));
        CHECK_FALSE(c.is_server());
        CHECK(s.is_server());
        CHECK(c.native_handle() != nullptr);
        CHECK(tls::context().native_handle() == nullptr);
        // The system store alone loads (Debian: /etc/ssl/certs).
        CHECK_NOTHROW(tls::context::make_client({}));
    }
}

TEST_CASE("tls::context: the system trust store is found, and only when asked for", "[tls]") {
    // A root of Debian's store (package ca-certificates), verified against
    // the context's own store: this needs the hashed directory lookup.
    const char* root = "/etc/ssl/certs/ISRG_Root_X1.pem";
    if (!std::filesystem::exists(root)) {
        WARN("no " << root << ": skipped");
        return;
    }
    X509* cert = nullptr;
    if (FILE* f = std::fopen(root, "r")) {
        cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
        std::fclose(f);
    }
    REQUIRE(cert);
    auto verifies = [&](const tls::context& ctx) {
        X509_STORE_CTX* sc = X509_STORE_CTX_new();
        REQUIRE(X509_STORE_CTX_init(sc, SSL_CTX_get_cert_store(ctx.native_handle()), cert, nullptr) == 1);
        const bool ok = X509_verify_cert(sc) == 1;
        X509_STORE_CTX_free(sc);
        return ok;
    };
    tls::client_options o;
    CHECK(verifies(tls::context::make_client(o)));
    o.use_system_store = false;
    CHECK_FALSE(verifies(tls::context::make_client(o)));
    o.ca_file = pki().ca.ca_cert().string();
    CHECK_FALSE(verifies(tls::context::make_client(o)));
    X509_free(cert);
}

TEST_CASE("tls::context::shared_client: one context per live option set", "[tls]") {
    tls::client_options a;
    a.use_system_store = false;
    a.ca_file = pki().ca.ca_cert().string();
    tls::client_options b = a;
    b.alpn = {"xmpp-client"};

    auto a1 = tls::context::shared_client(a);
    auto a2 = tls::context::shared_client(a);
    auto b1 = tls::context::shared_client(b);
    CHECK(a1.native_handle() == a2.native_handle());
    CHECK(a1.native_handle() != b1.native_handle());
    // make_client() never shares.
    CHECK(tls::context::make_client(a).native_handle() != a1.native_handle());
    // A shared context works like any other.
    CHECK_FALSE(a1.is_server());
    // Bad options throw as make_client() does, and leave nothing behind.
    tls::client_options bad = a;
    bad.ca_file = "/nonexistent/ca.pem";
    CHECK_THROWS_AS(tls::context::shared_client(bad), boost::system::system_error);
    CHECK_THROWS_AS(tls::context::shared_client(bad), boost::system::system_error);
}

TEST_CASE("tls::connect/accept: wrong arguments are refused", "[tls]") {
    asio::io_context io;
    auto cctx = tls::context::make_client(trusting_client());
    auto sctx = tls::context::make_server(server_with(pki().localhost));
    auto [c, s] = socket_pair(io);
    outcome<transport_ptr> a, b, d, e;
    spawn(io, tls::connect(std::move(c), sctx, "localhost"), a);
    spawn(io, tls::accept(std::move(s), cctx), b);
    auto [c2, s2] = socket_pair(io);
    spawn(io, tls::connect(std::move(c2), cctx, ""), d); // nothing to verify against
    spawn(io, tls::connect(tls::make_tcp_transport(std::move(s2)), tls::context(), "localhost"), e);
    run(io);
    for (auto* o : {&a, &b, &d, &e}) {
        REQUIRE(o->done);
        CHECK_THROWS_AS(std::rethrow_exception(o->error), std::invalid_argument);
    }
}

// --- Handshake and data --------------------------------------------------------

TEST_CASE("tls: handshake, data both ways, info", "[tls]") {
    asio::io_context io;
    auto cctx = tls::context::make_client(trusting_client());
    auto sctx = tls::context::make_server(server_with(pki().localhost));
    auto p = connected(io, cctx, sctx);

    CHECK(p.client->is_secure());
    CHECK(p.server->is_secure());
    CHECK(p.client->tls_version() == 0x0304);
    CHECK(p.server->tls_version() == 0x0304);
    CHECK(p.client->remote_endpoint_text().rfind("127.0.0.1:", 0) == 0);
    CHECK(p.server->remote_endpoint_text().rfind("127.0.0.1:", 0) == 0);

    auto ci = tls::info(*p.client);
    auto si = tls::info(*p.server);
    REQUIRE(ci);
    REQUIRE(si);
    CHECK(ci->peer_verified);
    CHECK_FALSE(si->peer_verified); // no client certificate asked for
    CHECK(si->server_name == "localhost"); // SNI
    CHECK(ci->cipher.rfind("TLS_", 0) == 0);
    CHECK(ci->alpn.empty());

    outcome<std::string> got_s, got_c;
    outcome<none> w1, w2;
    spawn(io, p.client->write("hello from the client"), w1);
    spawn(io, read_n(*p.server, 21), got_s);
    spawn(io, p.server->write("hello from the server!"), w2);
    spawn(io, read_n(*p.client, 22), got_c);
    run(io);
    w1.get();
    w2.get();
    CHECK(got_s.get() == "hello from the client");
    CHECK(got_c.get() == "hello from the server!");
}

TEST_CASE("tls: several MB both directions at once", "[tls]") {
    asio::io_context io;
    auto cctx = tls::context::make_client(trusting_client());
    auto sctx = tls::context::make_server(server_with(pki().localhost));
    auto p = connected(io, cctx, sctx);
    const std::size_t n = 6 * 1024 * 1024 + 12345; // not a multiple of a record
    const auto up = random_bytes(n, 1), down = random_bytes(n, 2);
    outcome<std::string> got_s, got_c;
    outcome<none> w1, w2;
    spawn(io, p.client->write(up), w1);
    spawn(io, p.server->write(down), w2);
    spawn(io, read_n(*p.server, n), got_s);
    spawn(io, read_n(*p.client, n), got_c);
    run(io, 60s);
    w1.get();
    w2.get();
    CHECK(got_s.get() == up);
    CHECK(got_c.get() == down);
}

TEST_CASE("tls: read_some never blocks; wait_read", "[tls]") {
    asio::io_context io;
    auto cctx = tls::context::make_client(trusting_client());
    auto sctx = tls::context::make_server(server_with(pki().localhost));
    auto p = connected(io, cctx, sctx);

    char buf[16];
    error_code ec;
    CHECK(p.client->read_some(asio::buffer(buf), ec) == 0);
    CHECK(ec == asio::error::would_block);
    CHECK(p.client->read_some(asio::mutable_buffer(), ec) == 0);
    CHECK(ec == asio::error::invalid_argument);

    // One 100-byte record, read 10 bytes at a time: the rest is inside the
    // SSL object, not in the socket, and wait_read() must see it (nothing
    // else is ever sent, so a socket wait would hang until the time limit).
    outcome<none> w;
    spawn(io, p.server->write(std::string(100, 'z')), w);
    outcome<std::size_t> r;
    // Named: a coroutine lambda's captures live in the closure object, which
    // must outlive the coroutine.
    auto reader = [&]() -> asio::awaitable<std::size_t> {
            std::size_t total = 0;
            for (;;) {
                error_code e;
                const auto k = p.client->read_some(asio::buffer(buf, 10), e);
                if (e == asio::error::would_block) {
                    if (total == 100) co_return total;
                    co_await p.client->wait_read();
                    continue;
                }
                if (e) throw boost::system::system_error(e);
                REQUIRE(k == 10);
                total += k;
                if (total < 100) co_await p.client->wait_read(); // data pending inside the SSL object
            }
    };
    spawn(io, reader(), r);
    run(io, 10s);
    w.get();
    CHECK(r.get() == 100);
}

TEST_CASE("tls: close() aborts a pending wait_read and write", "[tls]") {
    asio::io_context io;
    auto cctx = tls::context::make_client(trusting_client());
    auto sctx = tls::context::make_server(server_with(pki().localhost));
    auto p = connected(io, cctx, sctx);
    outcome<none> waiting, writing;
    spawn(io, p.client->wait_read(), waiting);
    // Nobody reads on the server side: this write fills the socket buffers and waits.
    const std::string big(32 * 1024 * 1024, 'b');
    spawn(io, p.client->write(big), writing);
    asio::steady_timer t(io, 100ms);
    t.async_wait([&](error_code) { p.client->close(); });
    run(io, 10s);
    CHECK(waiting.code() == asio::error::operation_aborted);
    CHECK(writing.code() == asio::error::operation_aborted);
    // Afterwards reads fail at once, without touching the old descriptor.
    char buf[8];
    error_code ec;
    CHECK(p.client->read_some(asio::buffer(buf), ec) == 0);
    CHECK(ec == asio::error::bad_descriptor);
}

TEST_CASE("tls: eof after close_notify, stream_truncated after an abrupt close", "[tls]") {
    asio::io_context io;
    auto cctx = tls::context::make_client(trusting_client());
    auto sctx = tls::context::make_server(server_with(pki().localhost));

    SECTION("orderly: shutdown() sends close_notify") {
        auto p = connected(io, cctx, sctx);
        outcome<none> w;
        auto last_words = [&]() -> asio::awaitable<void> {
            co_await p.server->write("last words");
            co_await p.server->shutdown();
        };
        spawn(io, last_words(), w);
        outcome<std::pair<std::string, error_code>> r;
        spawn(io, read_to_end(*p.client), r);
        run(io, 10s);
        w.get();
        CHECK(r.get().first == "last words");
        CHECK(r.get().second == asio::error::eof);
        // The other direction still works after a half close.
        outcome<none> w2;
        outcome<std::string> r2;
        spawn(io, p.client->write("reply"), w2);
        spawn(io, read_n(*p.server, 5), r2);
        run(io, 10s);
        w2.get();
        CHECK(r2.get() == "reply");
    }
    SECTION("abrupt: TCP closed without close_notify") {
        auto p = connected(io, cctx, sctx);
        outcome<none> w;
        spawn(io, p.server->write("cut"), w);
        run(io, 10s);
        w.get();
        p.server->close();
        outcome<std::pair<std::string, error_code>> r;
        spawn(io, read_to_end(*p.client), r);
        run(io, 10s);
        CHECK(r.get().first == "cut");
        CHECK(r.get().second == tls::errc::stream_truncated);
    }
}

TEST_CASE("tcp transport: plain data, would_block, eof, close", "[tls]") {
    asio::io_context io;
    auto [c, s] = socket_pair(io);
    auto ct = tls::make_tcp_transport(std::move(c));
    auto st = tls::make_tcp_transport(std::move(s));
    CHECK_FALSE(ct->is_secure());
    CHECK(ct->tls_version() == 0);
    CHECK(ct->channel_binding("tls-exporter").empty());
    CHECK_FALSE(tls::info(*ct));
    char buf[8];
    error_code ec;
    CHECK(ct->read_some(asio::buffer(buf), ec) == 0);
    CHECK(ec == asio::error::would_block);
    outcome<none> w, waiting;
    outcome<std::pair<std::string, error_code>> r;
    auto send = [&]() -> asio::awaitable<void> {
        co_await st->write("plain");
        co_await st->shutdown();
    };
    spawn(io, send(), w);
    spawn(io, read_to_end(*ct), r);
    run(io, 10s);
    w.get();
    CHECK(r.get().first == "plain");
    CHECK(r.get().second == asio::error::eof);

    spawn(io, st->wait_read(), waiting);
    asio::steady_timer t(io, 50ms);
    t.async_wait([&](error_code) { st->close(); });
    run(io, 10s);
    CHECK(waiting.code() == asio::error::operation_aborted);
}

TEST_CASE("tcp transport: try_write takes what the socket has room for, then would_block", "[tls]") {
    asio::io_context io;
    auto [c, s] = socket_pair(io);
    auto ct = tls::make_tcp_transport(std::move(c));
    auto st = tls::make_tcp_transport(std::move(s));
    error_code ec;
    CHECK(ct->try_write("hello", ec) == 5);
    CHECK_FALSE(ec);
    char buf[16];
    outcome<none> waited;
    spawn(io, st->wait_read(), waited);
    run(io, 10s);
    REQUIRE(st->read_some(asio::buffer(buf), ec) == 5);
    CHECK(std::string_view(buf, 5) == "hello");
    // A peer that does not read: the socket fills, and then takes nothing.
    const std::string chunk(64 * 1024, 'x');
    std::size_t total = 0, partial = 0;
    for (int i = 0; i < 10000; ++i) {
        const std::size_t n = ct->try_write(chunk, ec);
        total += n;
        if (n < chunk.size()) {
            ++partial;
            CHECK(ec == asio::error::would_block);
        }
        if (n == 0) break;
    }
    CHECK(partial >= 1);
    CHECK(total > 0);
    CHECK(ec == asio::error::would_block);
    CHECK(ct->try_write(chunk, ec) == 0);
    CHECK(ec == asio::error::would_block);
    // What went out arrives whole, in order.
    std::size_t got = 0;
    bool all_x = true;
    for (int i = 0; i < 100000 && got < total; ++i) {
        char big[65536];
        const std::size_t n = st->read_some(asio::buffer(big), ec);
        if (ec == asio::error::would_block) {
            spawn(io, st->wait_read(), waited);
            run(io, 10s);
            continue;
        }
        REQUIRE_FALSE(ec);
        all_x = all_x && std::string_view(big, n).find_first_not_of('x') == std::string_view::npos;
        got += n;
    }
    CHECK(got == total);
    CHECK(all_x);
    // After close: an error, not a crash.
    ct->close();
    CHECK(ct->try_write("late", ec) == 0);
    CHECK(ec);
    CHECK(ec != asio::error::would_block);
}

TEST_CASE("transport: try_write's default writes nothing and says so", "[tls]") {
    // (TLS and WebSocket have none: the session then uses write().)
    asio::io_context io;
    xmpp::test::idle_transport t(io.get_executor());
    error_code ec;
    CHECK(t.try_write("data", ec) == 0);
    CHECK(ec == asio::error::operation_not_supported);
}

// --- Verification ----------------------------------------------------------------

TEST_CASE("tls: certificate verification", "[tls]") {
    asio::io_context io;
    auto trusting = tls::context::make_client(trusting_client());

    SECTION("certificate for another name") {
        auto sctx = tls::context::make_server(server_with(pki().evil));
        auto r = handshake(io, trusting, sctx, "localhost");
        CHECK(r.client.code() == tls::errc::hostname_mismatch);
        CHECK(lower(r.client.what()).find("hostname mismatch") != std::string::npos);
        CHECK(r.client.what().find("localhost") != std::string::npos);
        CHECK(r.server.error); // the client's alert ends the server's handshake too
    }
    SECTION("the right name, other case") {
        auto sctx = tls::context::make_server(server_with(pki().evil));
        auto r = handshake(io, trusting, sctx, "EVIL.example");
        CHECK_FALSE(r.client.error);
    }
    SECTION("a CA nobody trusts") {
        auto o = trusting_client();
        o.ca_file.clear();
        o.use_system_store = true;
        auto sctx = tls::context::make_server(server_with(pki().localhost));
        auto r = handshake(io, tls::context::make_client(o), sctx);
        CHECK(r.client.code() == tls::errc::certificate_verify_failed);
        CHECK(lower(r.client.what()).find("unable to get local issuer certificate") != std::string::npos);
    }
    SECTION("self-signed") {
        auto sctx = tls::context::make_server(server_with(pki().self_signed));
        auto r = handshake(io, trusting, sctx);
        CHECK(r.client.code() == tls::errc::certificate_verify_failed);
        CHECK(lower(r.client.what()).find("self") != std::string::npos);
    }
    SECTION("CA from a hashed directory") {
        auto dir = pki().dir.path() / "hashed";
        std::filesystem::create_directories(dir);
        std::filesystem::copy_file(pki().ca.ca_cert(), dir / "ca.pem",
                                   std::filesystem::copy_options::overwrite_existing);
        REQUIRE(std::system(("openssl rehash '" + dir.string() + "' >/dev/null 2>&1").c_str()) == 0);
        tls::client_options o;
        o.ca_path = dir.string();
        o.use_system_store = false;
        auto sctx = tls::context::make_server(server_with(pki().localhost));
        auto r = handshake(io, tls::context::make_client(o), sctx);
        CHECK_FALSE(r.client.error);
        REQUIRE(r.client.value);
        CHECK(tls::info(**r.client.value)->peer_verified);
    }
    SECTION("$SSL_CERT_DIR names the system store") {
        auto dir = pki().dir.path() / "hashed-env";
        std::filesystem::create_directories(dir);
        std::filesystem::copy_file(pki().ca.ca_cert(), dir / "ca.pem",
                                   std::filesystem::copy_options::overwrite_existing);
        REQUIRE(std::system(("openssl rehash '" + dir.string() + "' >/dev/null 2>&1").c_str()) == 0);
        const char* old = std::getenv("SSL_CERT_DIR");
        const std::string saved = old ? old : "";
        ::setenv("SSL_CERT_DIR", dir.c_str(), 1);
        auto cctx = tls::context::make_client({}); // system store only
        if (old)
            ::setenv("SSL_CERT_DIR", saved.c_str(), 1);
        else
            ::unsetenv("SSL_CERT_DIR");
        auto sctx = tls::context::make_server(server_with(pki().localhost));
        auto r = handshake(io, cctx, sctx);
        CHECK_FALSE(r.client.error);
    }
    SECTION("explicit opt-out accepts anything") {
        tls::client_options o;
        o.insecure_skip_verify = true;
        o.use_system_store = false;
        auto sctx = tls::context::make_server(server_with(pki().self_signed));
        auto r = handshake(io, tls::context::make_client(o), sctx, "wrong.example");
        REQUIRE_FALSE(r.client.error);
        CHECK(r.client.get()->is_secure());
        CHECK_FALSE(tls::info(*r.client.get())->peer_verified);
    }
    SECTION("an IP address is matched against IP SANs, and sends no SNI") {
        auto sctx = tls::context::make_server(server_with(pki().localhost));
        auto r = handshake(io, trusting, sctx, "127.0.0.1");
        CHECK(r.client.code() == tls::errc::hostname_mismatch); // the certificate has DNS:localhost only
        tls::client_options o;
        o.insecure_skip_verify = true;
        auto r2 = handshake(io, tls::context::make_client(o), sctx, "[::1]");
        REQUIRE_FALSE(r2.server.error);
        CHECK(tls::info(*r2.server.get())->server_name.empty());
    }
}

TEST_CASE("tls: server identity types (RFC 6120 13.7.2.1, RFC 6125)", "[tls]") {
    asio::io_context io;
    auto cctx = tls::context::make_client(trusting_client());
    const auto& ids = id_pki();
    // Accepted: the handshake completes, the peer counts as verified.
    auto accepted = [&](const testbed::pki::leaf& l, const std::string& name) {
        INFO(l.cert.filename().string() << " for " << name);
        auto r = handshake(io, cctx, tls::context::make_server(server_with(l)), name);
        const std::string what = r.client.error ? r.client.what() : "";
        INFO(what);
        REQUIRE_FALSE(r.client.error);
        REQUIRE_FALSE(r.server.error);
        CHECK(tls::info(*r.client.get())->peer_verified);
    };
    // Refused with hostname_mismatch; the error names what the certificate
    // presents; the server's handshake fails too: the client stopped before
    // its Finished, so it never sent application data.
    auto refused = [&](const testbed::pki::leaf& l, const std::string& name, const std::string& presented) {
        INFO(l.cert.filename().string() << " for " << name);
        auto r = handshake(io, cctx, tls::context::make_server(server_with(l)), name);
        REQUIRE(r.client.error);
        INFO(r.client.what());
        CHECK(r.client.code() == tls::errc::hostname_mismatch);
        CHECK(r.client.what().find(presented) != std::string::npos);
        CHECK(r.server.error);
    };
    SECTION("SRV-ID _xmpp-client.<domain> (RFC 4985)") {
        accepted(ids.srv_only, "srv.example");
        accepted(ids.srv_only, "SRV.Example."); // case and a trailing dot do not matter
        refused(ids.srv_only, "other.example", "SRV:_xmpp-client.srv.example");
        refused(ids.srv_only, "example", "SRV:_xmpp-client.srv.example");
        // The SRV-ID is not a DNS-ID of "_xmpp-client.srv.example".
        refused(ids.srv_only, "_xmpp-client.srv.example", "SRV:");
    }
    SECTION("SRV-ID of another service does not name a client's server") {
        refused(ids.srv_s2s, "srv.example", "SRV:_xmpp-server.srv.example");
    }
    SECTION("XmppAddr equal to the domain (RFC 6120 13.7.1.4)") {
        accepted(ids.addr_only, "addr.example");
        accepted(ids.addr_only, "ADDR.example");
        refused(ids.addr_only, "other.example", "XmppAddr:addr.example");
        refused(ids.addr_only, "sub.addr.example", "XmppAddr:addr.example");
    }
    SECTION("XmppAddr with U-labels matches the domain's A-labels") {
        accepted(ids.addr_idn, "xn--mnchen-3ya.example");
        refused(ids.addr_idn, "mnchen.example", "XmppAddr:");
    }
    SECTION("XmppAddr of a user is not a server identity") {
        refused(ids.addr_user, "addr.example", "XmppAddr:user@addr.example");
    }
    SECTION("wildcard DNS-ID: the whole left-most label, exactly one label") {
        accepted(ids.wildcard, "xmpp.wild.example");
        refused(ids.wildcard, "wild.example", "DNS:*.wild.example");
        refused(ids.wildcard, "a.b.wild.example", "DNS:*.wild.example");
        refused(ids.wildcard, "xmpp.other.example", "DNS:*.wild.example");
    }
    SECTION("CN-ID only when there is no subjectAltName identifier (RFC 6125 6.4.4)") {
        accepted(ids.cn_only, "cn.example");
        accepted(ids.cn_only, "CN.example");
        refused(ids.cn_only, "other.example", "CN:cn.example");
        refused(ids.cn_only, "sub.cn.example", "CN:cn.example");
        // An SRV-ID, XmppAddr or URI-ID present: the CN is not looked at.
        refused(ids.cn_and_srv, "cn.example", "SRV:_xmpp-client.other.example");
        accepted(ids.cn_and_srv, "other.example");
        refused(ids.cn_and_addr, "cn.example", "XmppAddr:other.example");
        accepted(ids.cn_and_addr, "other.example");
        refused(ids.cn_and_uri, "cn.example", "URI:xmpp:other.example");
    }
    SECTION("DNS-ID next to a CN for another name") {
        // pki().localhost: CN and DNS-ID localhost; evil: evil.example.
        refused(pki().evil, "localhost", "DNS:evil.example");
    }
    SECTION("TLS 1.2: refused during the handshake as well") {
        auto co = trusting_client();
        co.max_version = 0x0303;
        auto r = handshake(io, tls::context::make_client(co), tls::context::make_server(server_with(ids.srv_only)),
                           "other.example");
        CHECK(r.client.code() == tls::errc::hostname_mismatch);
        CHECK(r.server.error);
    }
    SECTION("the checks are skipped only with insecure_skip_verify") {
        tls::client_options o;
        o.insecure_skip_verify = true;
        o.use_system_store = false;
        auto r = handshake(io, tls::context::make_client(o), tls::context::make_server(server_with(ids.srv_only)),
                           "other.example");
        REQUIRE_FALSE(r.client.error);
        CHECK_FALSE(tls::info(*r.client.get())->peer_verified);
    }
}

TEST_CASE("tls: a peer that does not speak TLS", "[tls]") {
    asio::io_context io;
    auto cctx = tls::context::make_client(trusting_client());
    auto sctx = tls::context::make_server(server_with(pki().localhost));
    SECTION("client meets a plain XMPP server") {
        auto [c, s] = socket_pair(io);
        outcome<transport_ptr> r;
        spawn(io, tls::connect(std::move(c), cctx, "localhost"), r);
        const std::string junk = "<?xml version='1.0'?><stream:stream xmlns='jabber:client'>";
        asio::write(s, asio::buffer(junk));
        run(io, 10s);
        INFO(r.what());
        CHECK(r.code() == tls::errc::handshake_failed);
    }
    SECTION("server meets plain text, then EOF") {
        auto [c, s] = socket_pair(io);
        outcome<transport_ptr> r;
        spawn(io, tls::accept(std::move(s), sctx), r);
        asio::write(c, asio::buffer(std::string("hello\r\n\r\n")));
        c.shutdown(tcp::socket::shutdown_send);
        run(io, 10s);
        CHECK(r.code() == tls::errc::handshake_failed);
    }
    SECTION("peer closes during the handshake") {
        auto [c, s] = socket_pair(io);
        s.close();
        outcome<transport_ptr> r;
        spawn(io, tls::connect(std::move(c), cctx, "localhost"), r);
        run(io, 10s);
        REQUIRE(r.error);
        // EOF (handshake_failed) or a reset, depending on timing; never success.
        const auto ec = r.code();
        INFO(r.what());
        CHECK((ec == tls::errc::handshake_failed || ec == asio::error::connection_reset ||
               ec == asio::error::broken_pipe));
    }
    SECTION("a silent peer: the handshake is cancellable") {
        auto [c, s] = socket_pair(io);
        outcome<transport_ptr> r;
        asio::cancellation_signal cancel;
        asio::co_spawn(io, tls::connect(std::move(c), cctx, "localhost"),
                       asio::bind_cancellation_slot(cancel.slot(), [&r](std::exception_ptr e, transport_ptr t) {
                           r.done = true;
                           r.error = e;
                           if (!e) r.value = std::move(t);
                       }));
        asio::steady_timer t(io, 100ms);
        t.async_wait([&](error_code) { cancel.emit(asio::cancellation_type::terminal); });
        run(io, 10s);
        CHECK(r.code() == asio::error::operation_aborted);
        // The client socket was closed: the server side sees EOF after the ClientHello.
        std::string got;
        error_code ec;
        char buf[4096];
        while (!ec) got.append(buf, s.read_some(asio::buffer(buf), ec));
        CHECK(ec == asio::error::eof);
        CHECK(got.size() > 5);
        CHECK(got[0] == 0x16); // a TLS handshake record was sent before
    }
}

// --- Versions, ALPN, SNI -------------------------------------------------------

TEST_CASE("tls: protocol versions", "[tls]") {
    asio::io_context io;
    auto cctx = tls::context::make_client(trusting_client());
    SECTION("a server capped at TLS 1.1 is refused") {
        // server_options refuses such versions: set them on the SSL_CTX.
        auto sctx = tls::context::make_server(server_with(pki().localhost));
        REQUIRE(SSL_CTX_set_min_proto_version(sctx.native_handle(), TLS1_VERSION) == 1);
        REQUIRE(SSL_CTX_set_max_proto_version(sctx.native_handle(), TLS1_1_VERSION) == 1);
        auto r = handshake(io, cctx, sctx);
        CHECK(r.client.code() == tls::errc::protocol_version);
        CHECK(r.server.error);
    }
    SECTION("TLS 1.2 when the client caps there") {
        auto co = trusting_client();
        co.max_version = 0x0303;
        auto p = connected(io, tls::context::make_client(co), tls::context::make_server(server_with(pki().localhost)));
        CHECK(p.client->tls_version() == 0x0303);
        CHECK(p.server->tls_version() == 0x0303);
    }
}

TEST_CASE("tls: ALPN (XEP-0368) and SNI", "[tls]") {
    asio::io_context io;
    auto co = trusting_client();
    co.alpn = {"xmpp-client"};
    auto cctx = tls::context::make_client(co);
    SECTION("server selects xmpp-client") {
        auto so = server_with(pki().localhost);
        so.alpn = {"xmpp-server", "xmpp-client"};
        auto p = connected(io, cctx, tls::context::make_server(so));
        CHECK(tls::info(*p.server)->alpn == "xmpp-client");
        CHECK(tls::info(*p.client)->alpn == "xmpp-client");
        CHECK(tls::info(*p.server)->server_name == "localhost");
    }
    SECTION("server without ALPN: accepted, nothing selected") {
        auto p = connected(io, cctx, tls::context::make_server(server_with(pki().localhost)));
        CHECK(tls::info(*p.client)->alpn.empty());
    }
    SECTION("server accepting only another protocol refuses") {
        auto so = server_with(pki().localhost);
        so.alpn = {"xmpp-server"};
        auto r = handshake(io, cctx, tls::context::make_server(so));
        CHECK(r.client.code() == tls::errc::alpn_mismatch);
        CHECK(r.server.code() == tls::errc::alpn_mismatch);
    }
    SECTION("client without ALPN meets a server with ALPN") {
        auto so = server_with(pki().localhost);
        so.alpn = {"xmpp-client"};
        auto p = connected(io, tls::context::make_client(trusting_client()), tls::context::make_server(so));
        CHECK(tls::info(*p.server)->alpn.empty());
    }
}

// --- Channel binding -------------------------------------------------------------

namespace {

// The certificate's hash with `md`, as hex, by the openssl command line tool.
std::string fingerprint(const testbed::pki::leaf& l, const std::string& md) {
    auto fp = shell("openssl x509 -noout -fingerprint -" + md + " -in '" + l.cert.string() + "'");
    fp = fp.substr(fp.find('=') + 1);
    fp.erase(std::remove_if(fp.begin(), fp.end(), [](char ch) { return ch == ':' || ch == '\n'; }), fp.end());
    return fp;
}

} // namespace

TEST_CASE("tls: channel binding", "[tls]") {
    asio::io_context io;
    auto sctx = tls::context::make_server(server_with(pki().localhost));
    // RFC 5929 4.1: SHA-256 of the DER certificate (signed ecdsa-with-SHA256),
    // computed here by the openssl command line tool.
    const auto fp = fingerprint(pki().localhost, "sha256");
    REQUIRE(fp.size() == 64);

    SECTION("TLS 1.3") {
        auto p = connected(io, tls::context::make_client(trusting_client()), sctx);
        const auto ce = p.client->channel_binding("tls-exporter");
        CHECK(ce.size() == 32);
        CHECK(ce == p.server->channel_binding("tls-exporter"));
        CHECK(p.client->channel_binding("tls-unique").empty());
        CHECK(p.server->channel_binding("tls-unique").empty());
        CHECK(hex(p.client->channel_binding("tls-server-end-point")) == fp);
        CHECK(hex(p.server->channel_binding("tls-server-end-point")) == fp);
        CHECK(p.client->channel_binding("tls-whatever").empty());
        // Another connection, another value.
        auto p2 = connected(io, tls::context::make_client(trusting_client()), sctx);
        CHECK(p2.client->channel_binding("tls-exporter") != ce);
    }
    SECTION("TLS 1.2") {
        auto co = trusting_client();
        co.max_version = 0x0303;
        auto p = connected(io, tls::context::make_client(co), sctx);
        REQUIRE(p.client->tls_version() == 0x0303);
        const auto ce = p.client->channel_binding("tls-exporter"); // extended master secret is on
        CHECK(ce.size() == 32);
        CHECK(ce == p.server->channel_binding("tls-exporter"));
        const auto cu = p.client->channel_binding("tls-unique");
        CHECK(cu.size() == 12); // verify_data of the client's Finished; EMS on
        CHECK(cu == p.server->channel_binding("tls-unique"));
        CHECK(hex(p.client->channel_binding("tls-server-end-point")) == fp);
        CHECK(hex(p.server->channel_binding("tls-server-end-point")) == fp);
    }
    SECTION("RSASSA-PSS with SHA-384: tls-server-end-point uses SHA-384 (RFC 5929 4.1)") {
        tls::client_options co;
        co.ca_file = pss().ca.ca_cert().string();
        co.use_system_store = false;
        const auto want = fingerprint(pss().sha384, "sha384");
        REQUIRE(want.size() == 96);
        for (int version : {0x0304, 0x0303}) {
            INFO("version " << version);
            co.max_version = version;
            auto p = connected(io, tls::context::make_client(co), tls::context::make_server(server_with(pss().sha384)));
            CHECK(tls::info(*p.client)->peer_verified);
            CHECK(hex(p.client->channel_binding("tls-server-end-point")) == want);
            CHECK(hex(p.server->channel_binding("tls-server-end-point")) == want);
        }
    }
    SECTION("RSASSA-PSS with the default hash, SHA-1: SHA-256 instead") {
        // Not verified: the libraries' chain checks refuse SHA-1 signatures.
        tls::client_options co;
        co.insecure_skip_verify = true;
        co.use_system_store = false;
        const auto want = fingerprint(pss().sha1, "sha256");
        REQUIRE(want.size() == 64);
        auto cctx = tls::context::make_client(co);
        // The certificate goes in through the SSL_CTX: OpenSSL 3 refuses a
        // SHA-1 signature above security level 0, in its own certificate too.
        auto sctx = tls::context::make_server(server_with(pki().localhost));
#ifndef OPENSSL_IS_BORINGSSL
        SSL_CTX_set_security_level(cctx.native_handle(), 0);
        SSL_CTX_set_security_level(sctx.native_handle(), 0);
#endif
        REQUIRE(SSL_CTX_use_certificate_chain_file(sctx.native_handle(), pss().sha1.cert.c_str()) == 1);
        REQUIRE(SSL_CTX_use_PrivateKey_file(sctx.native_handle(), pss().sha1.key.c_str(), SSL_FILETYPE_PEM) == 1);
        auto p = connected(io, cctx, sctx);
        CHECK(hex(p.client->channel_binding("tls-server-end-point")) == want);
        CHECK(hex(p.server->channel_binding("tls-server-end-point")) == want);
    }
}

// --- STARTTLS --------------------------------------------------------------------

TEST_CASE("tls: STARTTLS upgrade of a TCP transport", "[tls]") {
    asio::io_context io;
    auto cctx = tls::context::make_client(trusting_client());
    auto sctx = tls::context::make_server(server_with(pki().localhost));
    auto [c, s] = socket_pair(io);
    transport_ptr client = tls::make_tcp_transport(std::move(c));
    transport_ptr server = tls::make_tcp_transport(std::move(s));
    outcome<none> cl, sv;
    std::string server_got, client_got;
    auto client_side = [&]() -> asio::awaitable<void> {
            co_await client->write("<starttls/>");
            auto proceed = co_await read_n(*client, 10);
            REQUIRE(proceed == "<proceed/>");
            client = co_await tls::connect(std::move(client), cctx, "localhost");
            co_await client->write("secret");
            client_got = co_await read_n(*client, 6);
    };
    auto server_side = [&]() -> asio::awaitable<void> {
            auto req = co_await read_n(*server, 11);
            REQUIRE(req == "<starttls/>");
            co_await server->write("<proceed/>");
            server = co_await tls::accept(std::move(server), sctx);
            server_got = co_await read_n(*server, 6);
            co_await server->write("answer");
    };
    spawn(io, client_side(), cl);
    spawn(io, server_side(), sv);
    run(io, 10s);
    cl.get();
    sv.get();
    CHECK(server_got == "secret");
    CHECK(client_got == "answer");
    CHECK(client->is_secure());
    CHECK(server->is_secure());

    // Only a TCP transport of make_tcp_transport() can be upgraded.
    outcome<transport_ptr> again;
    spawn(io, tls::connect(std::move(client), cctx, "localhost"), again);
    run(io, 10s);
    REQUIRE(again.error);
    CHECK_THROWS_AS(std::rethrow_exception(again.error), std::invalid_argument);
}

// --- A third-party peer: openssl s_server ------------------------------------------

namespace {

struct s_server {
    testbed::process proc;
    std::string log;
    unsigned short port = 0;

    // `extra` goes to s_server.  It answers "from-s_server\n" once it has
    // received our data: its stdin gets that line then (stdin stays open so
    // that it does not quit; data on stdin before the handshake would make
    // it handshake inside SSL_write and skip its connection report).
    // `env`: NAME=VALUE words for s_server's environment.
    s_server(const std::string& extra, const testbed::pki::leaf& cert, const std::string& env = "") {
        log = (pki().dir.path() / ("s_server-" + std::to_string(::getpid()) + "-" +
                                   std::to_string(counter()++) + ".log"))
                  .string();
        port = testbed::free_tcp_port();
        const std::string cmd = "(until grep -q from-asio-xmpp '" + log +
                                "'; do sleep 0.05; done; printf 'from-s_server\\n'; sleep 60)"
                                " | exec env " + env + " openssl s_server -naccept 1 -accept " +
                                std::to_string(port) + " -cert '" + cert.cert.string() + "' -key '" +
                                cert.key.string() +
                                "' -keymatexport EXPORTER-Channel-Binding -keymatexportlen 32 " + extra;
        proc = testbed::process({"sh", "-c", cmd}, log);
        // Wait for "ACCEPT" rather than probing the port: -naccept 1 would
        // spend its one connection on the probe.
        REQUIRE(wait_for_log("ACCEPT"));
    }

    static int& counter() {
        static int n = 0;
        return n;
    }

    bool wait_for_log(const std::string& what, std::chrono::milliseconds limit = 10s) {
        auto end = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < end) {
            if (file_text(log).find(what) != std::string::npos) return true;
            std::this_thread::sleep_for(20ms);
        }
        return false;
    }

    // The "Keying material: HEX" line s_server prints after the handshake.
    std::string keying_material() {
        if (!wait_for_log("Keying material: ")) return {};
        auto text = file_text(log);
        auto pos = text.find("Keying material: ") + 17;
        return text.substr(pos, text.find('\n', pos) - pos);
    }
};

void exchange_with_s_server(const std::string& extra, const tls::client_options& co, int version) {
    asio::io_context io;
    s_server srv(extra, pki().localhost);
    tcp::socket sock(io);
    sock.connect(tcp::endpoint(asio::ip::address_v4::loopback(), srv.port));
    outcome<transport_ptr> r;
    spawn(io, tls::connect(std::move(sock), tls::context::make_client(co), "localhost"), r);
    run(io, 10s);
    auto& t = r.get();
    CHECK(t->tls_version() == version);
    outcome<std::string> got;
    outcome<none> w;
    spawn(io, t->write("from-asio-xmpp\n"), w);
    spawn(io, read_n(*t, 14), got);
    run(io, 10s);
    w.get();
    CHECK(got.get() == "from-s_server\n");
    // Our close_notify ends its one connection; s_server then exits and
    // flushes the connection report it buffers.
    outcome<none> bye;
    spawn(io, t->shutdown(), bye);
    run(io, 10s);
    bye.get();
    const auto km = srv.keying_material();
    INFO(file_text(srv.log));
    REQUIRE(km.size() == 64);
    CHECK(hex(t->channel_binding("tls-exporter")) == km);
}

} // namespace

TEST_CASE("tls: TLS 1.2 without the extended master secret: no tls-unique, no tls-exporter", "[tls][s_server]") {
    // s_server has no flag for OpenSSL's SSL_OP_NO_EXTENDED_MASTER_SECRET;
    // its configuration file has (and BoringSSL, ours in the default build,
    // has no switch at all).
    const auto cnf = pki().dir.path() / "no-ems.cnf";
    std::ofstream(cnf) << "openssl_conf = init\n[init]\nssl_conf = ssl\n[ssl]\nsystem_default = sys\n"
                          "[sys]\nOptions = -ExtendedMasterSecret\n";
    const auto fp = fingerprint(pki().localhost, "sha256");
    for (bool ems : {true, false}) {
        INFO("extended master secret " << ems);
        asio::io_context io;
        s_server srv("-tls1_2", pki().localhost, ems ? "" : "OPENSSL_CONF='" + cnf.string() + "'");
        tcp::socket sock(io);
        sock.connect(tcp::endpoint(asio::ip::address_v4::loopback(), srv.port));
        outcome<transport_ptr> r;
        spawn(io, tls::connect(std::move(sock), tls::context::make_client(trusting_client()), "localhost"), r);
        run(io, 10s);
        auto& t = r.get();
        REQUIRE(t->tls_version() == 0x0303);
        // RFC 7627 / RFC 9266 3: without EMS neither value is unique to the
        // connection (triple handshake); the certificate hash still is.
        CHECK(t->channel_binding("tls-unique").size() == (ems ? 12u : 0u));
        CHECK(t->channel_binding("tls-exporter").size() == (ems ? 32u : 0u));
        CHECK(hex(t->channel_binding("tls-server-end-point")) == fp);
        outcome<none> bye;
        spawn(io, t->shutdown(), bye);
        run(io, 10s);
        bye.get();
    }
}

TEST_CASE("tls: against openssl s_server", "[tls][s_server]") {
    SECTION("TLS 1.3") { exchange_with_s_server("-tls1_3", trusting_client(), 0x0304); }
    SECTION("TLS 1.2") { exchange_with_s_server("-tls1_2", trusting_client(), 0x0303); }
    SECTION("TLS 1.3 with ALPN and a client certificate the server requires") {
        auto co = trusting_client();
        co.alpn = {"xmpp-client"};
        co.client_cert_file = pki().client.cert.string();
        co.client_key_file = pki().client.key.string();
        exchange_with_s_server("-tls1_3 -alpn xmpp-client -Verify 1 -verify_return_error -CAfile '" +
                                   pki().ca.ca_cert().string() + "'",
                               co, 0x0304);
    }
}
