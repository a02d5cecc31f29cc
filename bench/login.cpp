// bench/login: wall time of one client login against a throwaway Prosody on
// loopback: TCP connect + STARTTLS (TLS 1.3, certificate verified) +
// SCRAM-SHA-256 + resource bind, i.e. xmpp::session::async_connect until
// the session is ready.  Logins run one after another (argv[1], default
// 200, after 10 warm-up logins); each session is closed before the next.
//
// Beside it, the PBKDF2 cost: the iteration count is read from the server's
// SCRAM challenge (the tee hook sees it) and PBKDF2-HMAC-SHA-256 with that
// count is timed on the same machine.  Prosody's internal_plain store
// derives the salted password on every login too, so one login pays PBKDF2
// about twice (client and server), and the rest is TLS and round trips.
//
// Prints BENCH lines; see bench/RESULTS.md.
#include "testbed/servers.hpp"

#include <xmpp/session.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include <openssl/evp.h>

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

namespace {

double ms(clock_type::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// The i= of a SCRAM server-first message seen in the read stream: the
// first <challenge> (RFC 6120 6.4.2) carries it, base64 encoded.
unsigned iterations_in(const std::string& seen) {
    const auto open = seen.find("<challenge");
    if (open == std::string::npos) return 0;
    const auto start = seen.find('>', open);
    const auto end = seen.find("</challenge>", open);
    if (start == std::string::npos || end == std::string::npos || end < start) return 0;
    const std::string b64 = seen.substr(start + 1, end - start - 1);
    std::string raw(b64.size(), '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(raw.data()),
                                  reinterpret_cast<const unsigned char*>(b64.data()), static_cast<int>(b64.size()));
    if (n <= 0) return 0;
    raw.resize(static_cast<std::size_t>(n));
    const auto i = raw.find(",i=");
    return i == std::string::npos ? 0 : static_cast<unsigned>(std::strtoul(raw.c_str() + i + 3, nullptr, 10));
}

double pbkdf2_ms(unsigned iterations) {
    unsigned char out[32];
    const char salt[] = "0123456789abcdef";
    constexpr int runs = 20;
    const auto t0 = clock_type::now();
    for (int r = 0; r < runs; ++r)
        PKCS5_PBKDF2_HMAC("bench-pass", 10, reinterpret_cast<const unsigned char*>(salt), 16, iterations,
                          EVP_sha256(), sizeof out, out);
    return ms(clock_type::now() - t0) / runs;
}

struct result {
    std::vector<double> login_ms;
    unsigned iterations = 0;
};

asio::awaitable<void> run(const xmpp::testbed::server& server, int warmup, int n, result& out) {
    const auto& acct = server.accounts().front();
    for (int k = 0; k < warmup + n; ++k) {
        std::string seen;
        xmpp::session_options o;
        o.address = xmpp::jid::parse(acct.user + "@" + server.domain() + "/bench");
        o.password = acct.password;
        o.host = "127.0.0.1";
        o.port = server.c2s_port();
        o.tls.ca_file = server.ca_file().string();
        o.tls.use_system_store = false;
        o.sasl.mechanisms = {"SCRAM-SHA-256"};
        if (k == 0) o.on_read = [&seen](std::string_view b) { seen.append(b); };
        xmpp::session s(co_await asio::this_coro::executor, std::move(o));
        const auto t0 = clock_type::now();
        co_await s.async_connect(asio::use_awaitable);
        const auto t = clock_type::now() - t0;
        if (s.sasl_mechanism() != "SCRAM-SHA-256") throw std::runtime_error("logged in with " + s.sasl_mechanism());
        if (k == 0) out.iterations = iterations_in(seen);
        if (k >= warmup) out.login_ms.push_back(ms(t));
        co_await s.async_close(asio::use_awaitable);
    }
}

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

} // namespace

int main(int argc, char** argv) {
    const int n = argc > 1 ? std::atoi(argv[1]) : 200;
    if (n < 1) {
        std::fprintf(stderr, "usage: login [N >= 1]\n");
        return 2;
    }
    try {
        xmpp::testbed::prosody_options po;
        po.accounts = {{"bench", "bench-pass"}};
        po.direct_tls = false;
        xmpp::testbed::prosody_server prosody(po);

        result r;
        asio::io_context io;
        std::exception_ptr failure;
        asio::co_spawn(io, run(prosody, 10, n, r), [&](std::exception_ptr e) { failure = e; });
        io.run();
        if (failure) std::rethrow_exception(failure);
        if (r.iterations == 0) throw std::runtime_error("no SCRAM iteration count seen in the server's challenge");

        std::printf("BENCH login_ms %.2f ms\n", percentile(r.login_ms, 0.5));
        std::printf("BENCH login_p90_ms %.2f ms\n", percentile(r.login_ms, 0.9));
        std::printf("BENCH login_pbkdf2_ms %.2f ms\n", pbkdf2_ms(r.iterations));
        std::printf("# %d logins (connect + STARTTLS + SCRAM-SHA-256 + bind) against Prosody on loopback; "
                    "PBKDF2-HMAC-SHA-256 with the server's i=%u, paid by the client and again by the server\n",
                    n, r.iterations);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "login: %s\n", e.what());
        return 1;
    }
}
