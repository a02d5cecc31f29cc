// Smoke test of the throwaway servers (tools/testbed/servers.hpp): each one is
// started, spoken to over a raw socket (plain and TLS, no library code), and
// stopped. Prints how long each start took.
#include "test_catch.hpp"

#include "testbed/dnsmasq.hpp"
#include "testbed/servers.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <chrono>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <iostream>
#include <netinet/in.h>
#include <signal.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

using namespace xmpp::testbed;
namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

namespace {

/// A blocking client socket with 10 s timeouts, optionally under TLS.
class conn {
public:
    explicit conn(unsigned short port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        timeval tv{10, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port);
        connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    }
    conn(const conn&) = delete;
    conn& operator=(const conn&) = delete;
    ~conn() {
        if (ssl_) SSL_free(ssl_);
        if (ctx_) SSL_CTX_free(ctx_);
        if (fd_ >= 0) ::close(fd_);
    }
    bool connected() const { return connected_; }

    /// TLS handshake that trusts only `ca` and requires `name` in the
    /// certificate; SNI is `sni`, else `name`. Returns "" on success, else why
    /// it failed.
    std::string start_tls(const fs::path& ca, const std::string& name, const std::string& sni = {}) {
        ctx_ = SSL_CTX_new(TLS_client_method());
        if (SSL_CTX_load_verify_locations(ctx_, ca.c_str(), nullptr) != 1) return "cannot load CA";
        SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
        ssl_ = SSL_new(ctx_);
        SSL_set_fd(ssl_, fd_);
        SSL_set_tlsext_host_name(ssl_, (sni.empty() ? name : sni).c_str());
        SSL_set1_host(ssl_, name.c_str());
        if (SSL_connect(ssl_) != 1) {
            char buf[256];
            ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
            long v = SSL_get_verify_result(ssl_);
            return std::string("handshake failed: ") + buf + " / verify: " + X509_verify_cert_error_string(v);
        }
        return SSL_get_verify_result(ssl_) == X509_V_OK ? "" : "not verified";
    }

    bool send(const std::string& s) {
        if (ssl_) return SSL_write(ssl_, s.data(), static_cast<int>(s.size())) == static_cast<int>(s.size());
        return ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size());
    }

    /// Reads until `done(text so far)`, or until EOF, an error or the
    /// timeout; returns what came.
    template <class Pred>
    std::string read_while_not(Pred done) {
        std::string got;
        char buf[4096];
        while (!done(got)) {
            long n = ssl_ ? SSL_read(ssl_, buf, sizeof buf) : ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) break;
            got.append(buf, static_cast<std::size_t>(n));
        }
        return got;
    }
    std::string read_until(const std::string& marker) {
        return read_while_not([&](const std::string& s) { return s.find(marker) != std::string::npos; });
    }

private:
    int fd_ = -1;
    bool connected_ = false;
    SSL_CTX* ctx_ = nullptr;
    SSL* ssl_ = nullptr;
};

std::string stream_header(const std::string& domain) {
    return "<?xml version='1.0'?><stream:stream to='" + domain +
           "' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";
}

/// Opens a stream and returns the text up to </stream:features>.
std::string features(conn& c, const std::string& domain) {
    REQUIRE(c.send(stream_header(domain)));
    std::string f = c.read_until("</stream:features>");
    INFO(f);
    REQUIRE(f.find("</stream:features>") != std::string::npos);
    return f;
}

std::vector<std::string> mechanisms(const std::string& features) {
    std::vector<std::string> v;
    const std::string open = "<mechanism>", close = "</mechanism>";
    for (auto p = features.find(open); p != std::string::npos; p = features.find(open, p)) {
        p += open.size();
        auto e = features.find(close, p);
        if (e == std::string::npos) break;
        v.push_back(features.substr(p, e - p));
    }
    return v;
}

bool has(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

std::string base64(const std::string& in) {
    static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8 | (unsigned char)in[i + 2];
        out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], t[v & 63]};
    }
    if (in.size() - i == 1) {
        unsigned v = (unsigned char)in[i] << 16;
        out += {t[v >> 18], t[(v >> 12) & 63], '=', '='};
    } else if (in.size() - i == 2) {
        unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8;
        out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], '='};
    }
    return out;
}

/// SASL PLAIN (RFC 4616) on a stream whose features were read; true on
/// <success/>, false on <failure/>.
bool plain_auth(conn& c, const std::string& user, const std::string& pass) {
    std::string msg = std::string("\0", 1) + user + std::string("\0", 1) + pass;
    REQUIRE(c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + base64(msg) + "</auth>"));
    // <success .../> or <success ...>data</success>; <failure ...>...</failure>
    std::string r = c.read_while_not([](const std::string& t) {
        auto p = t.find("<success");
        return (p != std::string::npos && t.find('>', p) != std::string::npos) ||
               t.find("</failure>") != std::string::npos;
    });
    INFO(r);
    if (r.find("<success") != std::string::npos) return true;
    REQUIRE(r.find("<failure") != std::string::npos);
    return false;
}

/// STARTTLS (RFC 6120 5.4) on a stream whose features were read.
std::string starttls(conn& c, const fs::path& ca, const std::string& name) {
    REQUIRE(c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"));
    std::string r = c.read_until("/>");
    INFO(r);
    REQUIRE(r.find("<proceed") != std::string::npos);
    return c.start_tls(ca, name);
}

/// The process exists and is not a zombie.
bool pid_alive(pid_t pid) {
    if (pid <= 0 || ::kill(pid, 0) != 0) return false;
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    std::getline(f, stat);
    auto p = stat.rfind(')');
    return p != std::string::npos && p + 2 < stat.size() && stat[p + 2] != 'Z';
}

/// Live (non-zombie) processes whose command line mentions `text`.
std::vector<pid_t> processes_mentioning(const std::string& text) {
    std::vector<pid_t> found;
    DIR* d = ::opendir("/proc");
    if (!d) return found;
    while (dirent* e = ::readdir(d)) {
        char* end = nullptr;
        long pid = std::strtol(e->d_name, &end, 10);
        if (*end != '\0' || pid <= 0 || pid == ::getpid()) continue;
        std::ifstream f(std::string("/proc/") + e->d_name + "/cmdline", std::ios::binary);
        std::string cmd((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        if (cmd.find(text) != std::string::npos && pid_alive(static_cast<pid_t>(pid)))
            found.push_back(static_cast<pid_t>(pid));
    }
    ::closedir(d);
    return found;
}

bool port_accepts(unsigned short port) {
    conn c(port);
    return c.connected();
}

template <class Server, class Options>
Server timed_start(const char* what, Options o) {
    const auto t0 = clock_type::now();
    Server s(std::move(o));
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count();
    std::cout << what << ": constructor " << ms << " ms, start (spawn to ready) " << s.startup_time().count()
              << " ms\n";
    return s;
}

std::string websocket_upgrade(const std::string& domain) {
    return "GET /xmpp-websocket HTTP/1.1\r\nHost: " + domain +
           "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n";
}

} // namespace

TEST_CASE("dnsmasq: the start-up probe counts only its own instance's answer", "[integration][dnsmasq]") {
    // Parallel tests each start a dnsmasq; one that lost its port to
    // another must not take the other's answers for its own.
    dnsmasq a({}), b({});
    REQUIRE(a.probe_name() != b.probe_name());
    CHECK(dns_answers(a.port(), std::chrono::milliseconds(2000), nullptr, a.probe_name()));
    CHECK(dns_answers(b.port(), std::chrono::milliseconds(2000), nullptr, b.probe_name()));
    // a answers b's probe (REFUSED: outside its zones), without a record.
    CHECK_FALSE(dns_answers(a.port(), std::chrono::milliseconds(300), nullptr, b.probe_name()));
    CHECK(dns_answers(a.port(), std::chrono::milliseconds(2000))); // any answer at all
    a.stop();
    CHECK_FALSE(dns_answers(a.port(), std::chrono::milliseconds(300), nullptr, a.probe_name()));
}

TEST_CASE("prosody: STARTTLS required, direct TLS, accounts, stop", "[integration][prosody]") {
    auto s = timed_start<prosody_server>("prosody default", prosody_options{});
    REQUIRE(s.domain() == "localhost");
    REQUIRE(s.c2s_port() != 0);
    REQUIRE(s.direct_tls_port() != 0);
    REQUIRE(s.direct_tls_port() != s.c2s_port());
    REQUIRE(s.websocket_port() == 0);
    REQUIRE(fs::exists(s.ca_file()));
    REQUIRE(pid_alive(s.pid()));

    SECTION("plain port: STARTTLS required, no mechanisms before TLS") {
        conn c(s.c2s_port());
        REQUIRE(c.connected());
        std::string f = features(c, s.domain());
        REQUIRE(f.find("<starttls") != std::string::npos);
        REQUIRE(f.find("<required/>") != std::string::npos);
        REQUIRE(mechanisms(f).empty());

        REQUIRE(starttls(c, s.ca_file(), "localhost") == "");
        auto m = mechanisms(features(c, s.domain()));
        REQUIRE(has(m, "SCRAM-SHA-1"));
        REQUIRE(has(m, "SCRAM-SHA-256"));
        REQUIRE(has(m, "PLAIN"));
        REQUIRE(plain_auth(c, "alice", "alice-pass"));
    }
    SECTION("direct TLS port: verified handshake, accounts") {
        conn c(s.direct_tls_port());
        REQUIRE(c.start_tls(s.ca_file(), "localhost") == "");
        auto f = features(c, s.domain());
        REQUIRE(f.find("<starttls") == std::string::npos);
        REQUIRE(has(mechanisms(f), "PLAIN"));
        REQUIRE_FALSE(plain_auth(c, "bob", "wrong-pass"));
        conn c2(s.direct_tls_port());
        REQUIRE(c2.start_tls(s.ca_file(), "localhost") == "");
        features(c2, s.domain());
        REQUIRE(plain_auth(c2, "bob", "bob-pass"));
    }
    SECTION("add_account while running") {
        s.add_account({"carol", "carol-pass"});
        REQUIRE(s.accounts().size() == 3);
        conn c(s.direct_tls_port());
        REQUIRE(c.start_tls(s.ca_file(), "localhost") == "");
        features(c, s.domain());
        REQUIRE(plain_auth(c, "carol", "carol-pass"));
    }
    SECTION("stop leaves nothing running, keeps the directory; the destructor removes it") {
        const pid_t pid = s.pid();
        const auto port = s.c2s_port();
        const fs::path dir = s.dir();
        const auto t0 = clock_type::now();
        s.stop();
        std::cout << "prosody stop: "
                  << std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count()
                  << " ms\n";
        REQUIRE(s.pid() == -1);
        REQUIRE_FALSE(pid_alive(pid));
        REQUIRE(processes_mentioning(dir.string()).empty());
        REQUIRE_FALSE(port_accepts(port));
        REQUIRE(fs::exists(dir));
        s.stop(); // idempotent
        { prosody_server gone = std::move(s); }
        REQUIRE_FALSE(fs::exists(dir));
    }
}

TEST_CASE("prosody: without require_encryption, SCRAM is listed before TLS", "[integration][prosody]") {
    prosody_options o;
    o.require_encryption = false;
    auto s = timed_start<prosody_server>("prosody require_encryption=false", o);
    conn c(s.c2s_port());
    std::string f = features(c, s.domain());
    REQUIRE(f.find("<starttls") != std::string::npos);
    REQUIRE(f.find("<required/>") == std::string::npos);
    auto m = mechanisms(f);
    REQUIRE(has(m, "SCRAM-SHA-1"));
    REQUIRE(has(m, "SCRAM-SHA-256"));
    REQUIRE_FALSE(has(m, "PLAIN")); // not on an unencrypted stream
}

TEST_CASE("prosody: tls=false offers no STARTTLS", "[integration][prosody]") {
    prosody_options o;
    o.tls = false;
    o.allow_unencrypted_plain = true;
    o.accounts = {{"dave", "dave-pass"}};
    auto s = timed_start<prosody_server>("prosody tls=false", o);
    REQUIRE(s.direct_tls_port() == 0);
    REQUIRE(s.ca_file().empty());
    conn c(s.c2s_port());
    std::string f = features(c, s.domain());
    REQUIRE(f.find("<starttls") == std::string::npos);
    REQUIRE(has(mechanisms(f), "PLAIN"));
    REQUIRE(plain_auth(c, "dave", "dave-pass"));
    conn c2(s.c2s_port());
    features(c2, s.domain());
    REQUIRE_FALSE(plain_auth(c2, "alice", "alice-pass")); // not in this server's accounts
}

TEST_CASE("prosody: wrong-name certificate", "[integration][prosody]") {
    prosody_options o;
    o.cert_name = "evil.example";
    auto s = timed_start<prosody_server>("prosody cert_name=evil.example", o);
    conn bad(s.direct_tls_port());
    REQUIRE(bad.start_tls(s.ca_file(), "localhost") != "");
    // The same certificate chains to the CA. (SNI stays the domain: Prosody
    // refuses a name it does not host.)
    conn good(s.direct_tls_port());
    REQUIRE(good.start_tls(s.ca_file(), "evil.example", "localhost") == "");
    conn plain(s.c2s_port());
    features(plain, s.domain());
    REQUIRE(starttls(plain, s.ca_file(), "localhost") != "");
}

TEST_CASE("prosody: two at once, restart, a start that cannot bind", "[integration][prosody]") {
    prosody_options o;
    o.websocket = true;
    auto a = timed_start<prosody_server>("prosody websocket (a)", o);
    auto b = timed_start<prosody_server>("prosody (b)", prosody_options{});
    REQUIRE(a.c2s_port() != b.c2s_port());
    REQUIRE(a.dir() != b.dir());
    REQUIRE(a.pid() != b.pid());
    for (auto* s : {&a, &b}) {
        conn c(s->c2s_port());
        REQUIRE(features(c, s->domain()).find("<starttls") != std::string::npos);
    }

    SECTION("websocket: ws:// and wss:// answer the RFC 7395 upgrade") {
        REQUIRE(a.websocket_port() != 0);
        REQUIRE(a.websocket_tls_port() != 0);
        conn ws(a.websocket_port());
        REQUIRE(ws.send(websocket_upgrade(a.domain())));
        std::string r = ws.read_until("\r\n\r\n");
        INFO(r);
        REQUIRE(r.rfind("HTTP/1.1 101", 0) == 0);
        conn wss(a.websocket_tls_port());
        REQUIRE(wss.start_tls(a.ca_file(), "localhost") == "");
        REQUIRE(wss.send(websocket_upgrade(a.domain())));
        r = wss.read_until("\r\n\r\n");
        REQUIRE(r.rfind("HTTP/1.1 101", 0) == 0);
    }
    SECTION("restart: same ports and accounts, a new process") {
        const pid_t old = b.pid();
        b.restart();
        std::cout << "prosody restart: start " << b.startup_time().count() << " ms\n";
        REQUIRE(b.pid() != old);
        REQUIRE_FALSE(pid_alive(old));
        conn c(b.direct_tls_port());
        REQUIRE(c.start_tls(b.ca_file(), "localhost") == "");
        features(c, b.domain());
        REQUIRE(plain_auth(c, "alice", "alice-pass"));
        // a runs on, untouched
        conn ca(a.c2s_port());
        REQUIRE(ca.connected());
    }
    SECTION("a taken port fails fast with the log, and leaves nothing running") {
        b.stop();
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sa.sin_port = htons(b.c2s_port());
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
        REQUIRE(::listen(fd, 1) == 0);
        const auto t0 = clock_type::now();
        std::string what;
        try {
            b.restart();
        } catch (const std::runtime_error& e) {
            what = e.what();
        }
        ::close(fd);
        INFO(what);
        REQUIRE(what.find("could not bind") != std::string::npos);
        REQUIRE(what.find("Failed to open server port") != std::string::npos); // the log tail
        REQUIRE(clock_type::now() - t0 < std::chrono::seconds(10));
        REQUIRE(b.pid() == -1);
        REQUIRE(processes_mentioning(b.dir().string()).empty());
        // and it comes back once the port is free
        b.restart();
        conn c(b.c2s_port());
        REQUIRE(c.connected());
    }
}

TEST_CASE("prosody: a broken config fails with the log tail", "[integration][prosody]") {
    prosody_options o;
    o.extra_config = "this is not lua";
    o.accounts = {}; // else prosodyctl register meets the error first
    const auto t0 = clock_type::now();
    std::string what;
    try {
        prosody_server s(o);
    } catch (const std::runtime_error& e) {
        what = e.what();
    }
    INFO(what);
    REQUIRE(what.find("prosody exited during start") != std::string::npos);
    REQUIRE(what.find("prosody.cfg.lua") != std::string::npos); // Prosody names the file
    REQUIRE(clock_type::now() - t0 < std::chrono::seconds(10));
}

TEST_CASE("ejabberd: STARTTLS, direct TLS with every SCRAM, accounts, two at once, restart, stop",
          "[integration][ejabberd]") {
    // One linear run, no SECTIONs: Catch2 would start the server again for each.
    auto s = timed_start<ejabberd_server>("ejabberd default", ejabberd_options{});
    REQUIRE(pid_alive(s.pid()));
    REQUIRE(s.direct_tls_port() != 0);

    { // plain port: STARTTLS required; mechanisms after it
        conn c(s.c2s_port());
        std::string f = features(c, s.domain());
        REQUIRE(f.find("<starttls") != std::string::npos);
        REQUIRE(f.find("<required/>") != std::string::npos);
        REQUIRE(starttls(c, s.ca_file(), "localhost") == "");
        auto m = mechanisms(features(c, s.domain()));
        REQUIRE(has(m, "SCRAM-SHA-512"));
        REQUIRE(has(m, "PLAIN"));
        REQUIRE(plain_auth(c, "alice", "alice-pass"));
    }
    { // direct TLS: SCRAM-SHA-1/256/512, -PLUS, PLAIN; no X-OAUTH2; wrong password fails
        conn c(s.direct_tls_port());
        REQUIRE(c.start_tls(s.ca_file(), "localhost") == "");
        auto m = mechanisms(features(c, s.domain()));
        for (const char* want : {"SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512", "SCRAM-SHA-1-PLUS",
                                 "SCRAM-SHA-256-PLUS", "SCRAM-SHA-512-PLUS", "PLAIN"}) {
            INFO(want);
            REQUIRE(has(m, want));
        }
        REQUIRE_FALSE(has(m, "X-OAUTH2"));
        REQUIRE_FALSE(plain_auth(c, "bob", "nope"));
    }
    { // a second and third instance at once: no TLS; wrong-name certificate
        ejabberd_options o;
        o.tls = false;
        o.accounts = {{"erin", "erin-pass"}};
        auto t = timed_start<ejabberd_server>("ejabberd tls=false", o);
        ejabberd_options e;
        e.cert_name = "evil.example";
        e.accounts = {};
        e.websocket = true;
        auto u = timed_start<ejabberd_server>("ejabberd cert_name=evil.example websocket", e);
        REQUIRE(t.c2s_port() != s.c2s_port());
        REQUIRE(t.direct_tls_port() == 0);
        REQUIRE(t.pid() != s.pid());
        conn c(t.c2s_port());
        std::string f = features(c, t.domain());
        REQUIRE(f.find("<starttls") == std::string::npos);
        REQUIRE(has(mechanisms(f), "SCRAM-SHA-512"));
        REQUIRE(plain_auth(c, "erin", "erin-pass"));

        conn bad(u.direct_tls_port());
        REQUIRE(bad.start_tls(u.ca_file(), "localhost") != "");
        conn good(u.direct_tls_port());
        REQUIRE(good.start_tls(u.ca_file(), "evil.example", "localhost") == "");

        conn ws(u.websocket_port());
        REQUIRE(ws.send(websocket_upgrade(u.domain())));
        std::string r = ws.read_until("\r\n\r\n");
        INFO(r);
        REQUIRE(r.rfind("HTTP/1.1 101", 0) == 0);

        // the first one is still there
        conn c0(s.direct_tls_port());
        REQUIRE(c0.start_tls(s.ca_file(), "localhost") == "");
    }
    { // restart keeps ports and accounts; stop leaves nothing running
        const pid_t old = s.pid();
        const auto t0 = clock_type::now();
        s.restart();
        std::cout << "ejabberd restart: "
                  << std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count()
                  << " ms (start " << s.startup_time().count() << " ms)\n";
        REQUIRE_FALSE(pid_alive(old));
        REQUIRE(pid_alive(s.pid()));
        conn c(s.direct_tls_port());
        REQUIRE(c.start_tls(s.ca_file(), "localhost") == "");
        features(c, s.domain());
        REQUIRE(plain_auth(c, "alice", "alice-pass"));

        const pid_t pid = s.pid();
        const auto t1 = clock_type::now();
        s.stop();
        std::cout << "ejabberd stop: "
                  << std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t1).count()
                  << " ms\n";
        REQUIRE_FALSE(pid_alive(pid));
        REQUIRE(processes_mentioning(s.dir().string()).empty());
        REQUIRE_FALSE(port_accepts(s.c2s_port()));
    }
}
