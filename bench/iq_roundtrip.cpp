// bench/iq_roundtrip: our client against our server side, in two processes
// on loopback, over plain TCP and over ws:// WebSocket; beside it, in the
// same run, a raw TCP ping-pong of the same message sizes (one write per
// message, and batched), and the server's full logins per second (TCP +
// STARTTLS + SCRAM-SHA-256 + bind).
//
//   iq_roundtrip [seconds per figure, default 2]
//
// The server process is this program run as `iq_roundtrip --serve DIR`: one
// thread, one io_context. Figures:
//   BENCH raw_tcp_p50_us and iq_p50_us: one in flight, in alternating
//         100 ms slices (see latency_bench), and their ratio iq_p50_vs_raw;
//         the server answers with an inline handler (session.hpp), and in
//         the third slice, iq_p50_us_coroutine_handler, with a coroutine one
//   BENCH raw_tcp_per_s (64 in flight, one write per message),
//         raw_tcp_batched_per_s (64 in flight, one write each way)
//   BENCH iq_per_s (64 in flight), iq_p50_us_alone       plain TCP
//   BENCH ws_iq_p50_us, ws_iq_per_s (64 in flight)      ws://
//   BENCH iq_per_s_alternating, ws_iq_per_s_alternating: 64 in flight over
//         TCP and ws:// in alternating 250 ms slices (throughput_bench), and
//         their ratio ws_vs_tcp_iq_per_s
//   BENCH server_logins_per_s, server_cpu_per_login_us, server_logins_per_cpu_s
//   BENCH login_pbkdf2_iterations
// and the ratios the issue asks for (iq_p50 / raw p50, ws / tcp).
#include "testbed/pki.hpp"
#include "testbed/process.hpp"

#include <xmpp/server.hpp>
#include <xmpp/session.hpp>
#include <xmpp/stanza.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <unistd.h>

namespace asio = boost::asio;
using namespace xmpp;
using asio::ip::tcp;
using asio::use_awaitable;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr std::uint32_t iterations = 4096; // RFC 7677 4's minimum, as servers use
constexpr int in_flight = 64;

double us(clock_type::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double p50(std::vector<double> v) {
    if (v.empty()) return 0;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    return v[v.size() / 2];
}

void bench(const char* name, double value, const char* unit) {
    std::printf(std::string_view(unit) == "x" ? "BENCH %s %.2f %s\n" : "BENCH %s %.1f %s\n", name, value, unit);
}

// --- the server process ------------------------------------------------------------

// Raw TCP: answers each `req`-byte request with `resp` bytes; one write per
// answer, or one write for all the answers a read completed.
asio::awaitable<void> raw_conn(tcp::socket s, std::size_t req, std::size_t resp, bool batched) {
    std::vector<char> buf(64 * 1024);
    const std::string answer(resp, 'r');
    std::string out;
    std::size_t pending = 0; // bytes of a request read so far
    s.set_option(tcp::no_delay(true));
    for (;;) {
        auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), asio::as_tuple(use_awaitable));
        if (ec) co_return;
        pending += n;
        std::size_t k = pending / req;
        pending %= req;
        if (batched) {
            out.clear();
            for (std::size_t i = 0; i < k; ++i) out += answer;
            if (!out.empty()) co_await asio::async_write(s, asio::buffer(out), use_awaitable);
        } else {
            for (std::size_t i = 0; i < k; ++i) co_await asio::async_write(s, asio::buffer(answer), use_awaitable);
        }
    }
}

asio::awaitable<void> raw_listen(tcp::acceptor& a, std::size_t req, std::size_t resp, bool batched) {
    for (;;) {
        auto s = co_await a.async_accept(use_awaitable);
        asio::co_spawn(a.get_executor(), raw_conn(std::move(s), req, resp, batched), asio::detached);
    }
}

// IQ_ROUNDTRIP_TURNAROUND=FILE (profiling): the time from a read to the next
// write inside a process (on_read -> on_write), one in flight; each process
// appends its p50 to FILE at its end.
struct turnaround {
    clock_type::time_point read_at{};
    std::vector<double> us_;
    void on_read() { read_at = clock_type::now(); }
    void on_write() {
        if (read_at != clock_type::time_point{} && us_.size() < 1000000) us_.push_back(us(clock_type::now() - read_at));
        read_at = {};
    }
    void print(const char* who) {
        if (us_.empty()) return;
        std::sort(us_.begin(), us_.end());
        if (FILE* f = std::fopen(std::getenv("IQ_ROUNDTRIP_TURNAROUND"), "a")) {
            std::fprintf(f, "turnaround %s p50 %.2f us (%zu)\n", who, us_[us_.size() / 2], us_.size());
            std::fclose(f);
        }
    }
};
turnaround turn;
const bool turnaround_on = std::getenv("IQ_ROUNDTRIP_TURNAROUND") != nullptr;

std::map<std::string, sasl::scram_secret> secrets; // "user/hash"

server_options server_settings(const std::string& dir, bool plaintext) {
    server_options o;
    o.domain = "localhost";
    // The plain server has no certificate, so it offers no STARTTLS: the
    // IQ figures are over plain TCP and ws://, as the raw reference is
    // (a client always takes an offered STARTTLS).
    if (!plaintext) {
        tls::server_options t;
        t.cert_file = dir + "/localhost.crt";
        t.key_file = dir + "/localhost.key";
        o.tls = tls::context::make_server(t);
    }
    o.allow_plaintext = plaintext;
    o.sasl.scram_lookup = [](std::string user, std::string hash) -> asio::awaitable<std::optional<sasl::scram_secret>> {
        auto it = secrets.find(user + "/" + hash);
        if (it == secrets.end()) co_return std::nullopt;
        co_return it->second;
    };
    o.max_pending = 100000;
    if (turnaround_on) {
        o.session.on_read = [](std::string_view) { turn.on_read(); };
        o.session.on_write = [](std::string_view) { turn.on_write(); };
    }
    return o;
}

int serve(const std::string& dir, std::size_t req, std::size_t resp) {
    for (const char* h : {"SHA-1", "SHA-256", "SHA-512"}) {
        boost::system::error_code ec;
        secrets["bench/" + std::string(h)] = sasl::make_scram_secret(h, "bench-pass", "bench-salt", iterations, ec);
        if (ec) return 1;
    }
    asio::io_context io(1);
    std::vector<session> sessions;
    auto keep = [&](session s) {
        // The ping responder as an inline handler (no coroutine per IQ);
        // the client's resource "co" gets it as a coroutine handler, for
        // latency_bench's second figure.
        if (s.peer_address().resourcepart() == "co") {
            s.set_handler([](incoming in) -> asio::awaitable<bool> {
                if (!iq_view(in.element()).is_request()) co_return false;
                co_await in.async_reply(asio::deferred);
                co_return true;
            });
        } else {
            s.set_inline_handler([](incoming& in) {
                if (!iq_view(in.element()).is_request()) return false;
                in.async_reply(asio::detached);
                return true;
            });
        }
        sessions.push_back(std::move(s));
        // Logged-in sessions of the login benchmark close themselves; drop
        // the ones that have ended so memory stays flat.
        if (sessions.size() > 4096)
            std::erase_if(sessions, [](const session& x) { return has_all(x.state(), session_state::input_closed); });
    };
    server plain(io.get_executor(), server_settings(dir, true));
    plain.listen({asio::ip::make_address("127.0.0.1"), 0}, listener_kind::tcp);
    plain.listen({asio::ip::make_address("127.0.0.1"), 0}, listener_kind::ws);
    plain.start(keep);
    server strict(io.get_executor(), server_settings(dir, false));
    strict.listen({asio::ip::make_address("127.0.0.1"), 0}, listener_kind::tcp);
    strict.start(keep);
    tcp::acceptor raw1(io, {asio::ip::make_address("127.0.0.1"), 0}), raw2(io, {asio::ip::make_address("127.0.0.1"), 0});
    asio::co_spawn(io, raw_listen(raw1, req, resp, false), asio::detached);
    asio::co_spawn(io, raw_listen(raw2, req, resp, true), asio::detached);
    {
        std::ofstream f(dir + "/ports.tmp");
        f << plain.port(0) << ' ' << plain.port(1) << ' ' << strict.port(0) << ' ' << raw1.local_endpoint().port() << ' '
          << raw2.local_endpoint().port() << '\n';
    }
    std::rename((dir + "/ports.tmp").c_str(), (dir + "/ports").c_str());
    asio::signal_set sig(io, SIGTERM, SIGINT);
    sig.async_wait([&](auto, int) { io.stop(); });
    io.run();
    turn.print("server");
    return 0;
}

// --- the client side -----------------------------------------------------------------

template <class F>
void run(asio::io_context& io, F f) {
    io.restart();
    bool done = false;
    std::exception_ptr err;
    asio::co_spawn(io, f(), [&](std::exception_ptr e) {
        done = true;
        err = e;
    });
    while (!done) io.run_one();
    if (err) std::rethrow_exception(err);
}

struct raw_figures {
    double p50_us = 0, per_s = 0, batched_per_s = 0;
};

raw_figures raw_bench(asio::io_context& io, std::uint16_t single_port, std::uint16_t batched_port, std::size_t req,
                      std::size_t resp, std::chrono::seconds dur, bool one_in_flight) {
    raw_figures f;
    run(io, [&]() -> asio::awaitable<void> {
        const std::string one(req, 'q');
        std::vector<char> in(64 * 1024);
        if (one_in_flight) { // one in flight
            tcp::socket s(io);
            co_await s.async_connect({asio::ip::make_address("127.0.0.1"), single_port}, use_awaitable);
            s.set_option(tcp::no_delay(true));
            std::vector<double> rtt;
            const auto end = clock_type::now() + dur;
            while (clock_type::now() < end) {
                auto t0 = clock_type::now();
                co_await asio::async_write(s, asio::buffer(one), use_awaitable);
                co_await asio::async_read(s, asio::buffer(in.data(), resp), use_awaitable);
                rtt.push_back(us(clock_type::now() - t0));
            }
            f.p50_us = p50(rtt);
        }
        for (bool batched : {false, true}) { // 64 in flight
            tcp::socket s(io);
            co_await s.async_connect({asio::ip::make_address("127.0.0.1"), batched ? batched_port : single_port}, use_awaitable);
            s.set_option(tcp::no_delay(true));
            std::string burst;
            for (int i = 0; i < in_flight; ++i) burst += one;
            std::size_t done = 0;
            const auto t0 = clock_type::now();
            const auto end = t0 + dur;
            while (clock_type::now() < end) {
                if (batched) {
                    co_await asio::async_write(s, asio::buffer(burst), use_awaitable);
                } else {
                    for (int i = 0; i < in_flight; ++i) co_await asio::async_write(s, asio::buffer(one), use_awaitable);
                }
                co_await asio::async_read(s, asio::buffer(in.data(), resp * in_flight), use_awaitable);
                done += in_flight;
            }
            const double per_s = done / std::chrono::duration<double>(clock_type::now() - t0).count();
            (batched ? f.batched_per_s : f.per_s) = per_s;
        }
    });
    return f;
}

session_options client_settings(const std::string& dir, std::uint16_t port, bool websocket, bool tls) {
    session_options o;
    o.address = jid::parse("bench@localhost/r");
    o.password = "bench-pass";
    o.tls.ca_file = dir + "/ca.pem";
    o.tls.use_system_store = false;
    o.sasl.mechanisms = {"SCRAM-SHA-256"};
    o.sasl.cache_salted_password = true; // see bench/RESULTS.md: the load generator's own PBKDF2
    if (websocket) {
        o.websocket_url = "ws://127.0.0.1:" + std::to_string(port) + "/xmpp-websocket";
        o.allow_plaintext = true;
    } else {
        o.host = "127.0.0.1";
        o.port = port;
        o.allow_plaintext = !tls;
    }
    return o;
}

struct iq_figures {
    double p50_us = 0, per_s = 0;
    std::size_t req = 0, resp = 0;
};

// One request in flight, the raw reference and our IQs in alternating
// slices of 100 ms over two persistent connections: both see the same
// machine. On a shared VM the speed of loopback round trips drifts by 30%
// within a minute, so figures measured one after the other would compare
// two machines.
// Our IQs twice: answered by the server's inline handler (iq_p50_us), and
// by a coroutine handler (the session of resource "co").
struct latency_figures {
    double raw_p50_us = 0, iq_p50_us = 0, co_iq_p50_us = 0;
};

latency_figures latency_bench(asio::io_context& io, std::uint16_t raw_port, const session_options& o, std::size_t req,
                              std::size_t resp, std::chrono::seconds dur) {
    latency_figures f;
    auto co_o = o;
    co_o.address = jid::parse("bench@localhost/co");
    session s(io.get_executor(), o), co_s(io.get_executor(), co_o);
    run(io, [&]() -> asio::awaitable<void> {
        tcp::socket raw(io);
        co_await raw.async_connect({asio::ip::make_address("127.0.0.1"), raw_port}, use_awaitable);
        raw.set_option(tcp::no_delay(true));
        co_await s.async_connect(use_awaitable);
        co_await co_s.async_connect(use_awaitable);
        const std::string one(req, 'q');
        std::vector<char> in(resp);
        auto ping = [] { return make_iq(iq_type::get, "localhost", "ping", "urn:xmpp:ping"); };
        std::vector<double> raw_rtt, iq_rtt, co_rtt;
        const auto slice = std::chrono::milliseconds(100);
        const auto end = clock_type::now() + dur;
        for (bool warm = true; clock_type::now() < end; warm = false) {
            for (auto e = clock_type::now() + slice; clock_type::now() < e;) {
                auto t0 = clock_type::now();
                co_await asio::async_write(raw, asio::buffer(one), use_awaitable);
                co_await asio::async_read(raw, asio::buffer(in), use_awaitable);
                if (!warm) raw_rtt.push_back(us(clock_type::now() - t0));
            }
            for (auto* x : {&s, &co_s}) {
                auto& rtt = x == &s ? iq_rtt : co_rtt;
                for (auto e = clock_type::now() + slice; clock_type::now() < e;) {
                    auto t0 = clock_type::now();
                    (void)co_await x->async_send_iq(ping(), use_awaitable);
                    if (!warm) rtt.push_back(us(clock_type::now() - t0));
                }
            }
        }
        f.raw_p50_us = p50(raw_rtt);
        f.iq_p50_us = p50(iq_rtt);
        f.co_iq_p50_us = p50(co_rtt);
        co_await s.async_close(use_awaitable);
        co_await co_s.async_close(use_awaitable);
    });
    return f;
}

// 64 loops on `s`, each with one IQ outstanding, until `d` has passed: the
// IQs answered and the time until the last loop ended. Throws what an IQ failed with.
struct in_flight_run {
    std::size_t done = 0;
    double secs = 0;
};

in_flight_run run_in_flight(asio::io_context& io, session& s, clock_type::duration d, const char* what) {
    in_flight_run r;
    boost::system::error_code failed;
    int running = in_flight;
    const auto t0 = clock_type::now();
    const auto stop = t0 + d;
    for (int i = 0; i < in_flight; ++i)
        asio::co_spawn(io, [&]() -> asio::awaitable<void> {
            while (clock_type::now() < stop) {
                auto [ec, reply] = co_await s.async_send_iq(make_iq(iq_type::get, "localhost", "ping", "urn:xmpp:ping"),
                                                            asio::as_tuple(use_awaitable));
                if (ec) {
                    failed = ec;
                    break;
                }
                ++r.done;
            }
            --running;
        }, asio::detached);
    io.restart();
    while (running > 0) io.run_one();
    if (failed) throw boost::system::system_error(failed, what);
    r.secs = std::chrono::duration<double>(clock_type::now() - t0).count();
    return r;
}

// 64 in flight over TCP and over ws:// in alternating slices of 250 ms on
// two persistent sessions, for the WebSocket / TCP ratio: one after the
// other, the two figures would see two machines (see latency_bench).
struct throughput_figures {
    double tcp_per_s = 0, ws_per_s = 0;
};

throughput_figures throughput_bench(asio::io_context& io, const session_options& tcp_o, const session_options& ws_o,
                                    std::chrono::seconds dur) {
    auto ws_own = ws_o;
    ws_own.address = jid::parse("bench@localhost/ws"); // both bound at once: another resource
    session tcp_s(io.get_executor(), tcp_o), ws_s(io.get_executor(), ws_own);
    run(io, [&]() -> asio::awaitable<void> {
        co_await tcp_s.async_connect(use_awaitable);
        co_await ws_s.async_connect(use_awaitable);
    });
    double done[2] = {0, 0}, secs[2] = {0, 0};
    const auto end = clock_type::now() + dur;
    for (int turn = 0; clock_type::now() < end || turn < 4; ++turn) {
        const int which = turn % 2;
        const auto r = run_in_flight(io, which == 0 ? tcp_s : ws_s, std::chrono::milliseconds(250),
                                     which == 0 ? "IQ over TCP" : "IQ over ws://");
        if (turn >= 2) { // the first slice of each warms up
            done[which] += r.done;
            secs[which] += r.secs;
        }
    }
    run(io, [&]() -> asio::awaitable<void> {
        co_await tcp_s.async_close(use_awaitable);
        co_await ws_s.async_close(use_awaitable);
    });
    return {done[0] / secs[0], done[1] / secs[1]};
}

iq_figures iq_bench(asio::io_context& io, const session_options& o, std::chrono::seconds dur) {
    iq_figures f;
    auto opts = o;
    std::size_t last_write = 0, last_read = 0;
    opts.on_write = [&](std::string_view b) {
        last_write = b.size();
        if (turnaround_on) turn.on_write();
    };
    opts.on_read = [&](std::string_view b) {
        last_read = b.size();
        if (turnaround_on) turn.on_read();
    };
    session s(io.get_executor(), opts);
    run(io, [&]() -> asio::awaitable<void> {
        co_await s.async_connect(use_awaitable);
        auto ping = [] { return make_iq(iq_type::get, "localhost", "ping", "urn:xmpp:ping"); };
        // Sizes of one request and one reply on the wire, for the raw reference.
        (void)co_await s.async_send_iq(ping(), use_awaitable);
        f.req = last_write;
        f.resp = last_read;
        std::vector<double> rtt;
        // IQ_ROUNDTRIP_NO_P50 skips the one-in-flight loop (profiling the 64 in flight).
        auto end = clock_type::now() + (std::getenv("IQ_ROUNDTRIP_NO_P50") ? clock_type::duration(0) : dur);
        while (clock_type::now() < end) {
            auto t0 = clock_type::now();
            (void)co_await s.async_send_iq(ping(), use_awaitable);
            rtt.push_back(us(clock_type::now() - t0));
        }
        f.p50_us = p50(rtt);
    });
    // 64 in flight: 64 loops, each with one IQ outstanding.
    // (IQ_ROUNDTRIP_NO_64 skips them: profiling the one in flight.)
    if (std::getenv("IQ_ROUNDTRIP_NO_64")) {
        run(io, [&]() -> asio::awaitable<void> { co_await s.async_close(use_awaitable); });
        return f;
    }
    const auto r = run_in_flight(io, s, dur, "64 IQs in flight");
    f.per_s = r.done / r.secs;
    run(io, [&]() -> asio::awaitable<void> { co_await s.async_close(use_awaitable); });
    return f;
}

double cpu_seconds(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(f, line);
    auto close = line.rfind(')');
    std::vector<std::string> fields;
    std::string cur;
    for (auto c : line.substr(close + 2)) {
        if (c == ' ') {
            fields.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    // utime, stime are fields 14 and 15 (1-based) of the whole line: 12, 13 here.
    const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    return (std::stod(fields.at(11)) + std::stod(fields.at(12))) / ticks;
}

struct login_figures {
    double per_s = 0, cpu_per_login_us = 0, per_cpu_s = 0;
};

login_figures login_bench(asio::io_context& io, const session_options& o, pid_t server_pid, std::chrono::seconds dur) {
    login_figures f;
    constexpr int parallel = 32;
    std::size_t done = 0, failed = 0;
    int running = parallel;
    // Warm-up: the client's cached salted password and TLS contexts.
    run(io, [&]() -> asio::awaitable<void> {
        session s(io.get_executor(), o);
        co_await s.async_connect(use_awaitable);
        co_await s.async_close(use_awaitable);
    });
    const double cpu0 = cpu_seconds(server_pid);
    const auto t0 = clock_type::now();
    const auto end = t0 + dur;
    for (int i = 0; i < parallel; ++i)
        asio::co_spawn(io, [&, i]() -> asio::awaitable<void> {
            unsigned k = 0;
            while (clock_type::now() < end) {
                auto oo = o;
                oo.address = jid::parse("bench@localhost/c" + std::to_string(i) + "-" + std::to_string(k++));
                session s(io.get_executor(), oo);
                auto [ec] = co_await s.async_connect(asio::as_tuple(use_awaitable));
                if (ec) {
                    if (++failed < 5) std::fprintf(stderr, "login failed: %s\n", s.last_error().what().c_str());
                } else {
                    ++done;
                }
                // Not counted: the close is the client's business.
                co_await s.async_close(asio::as_tuple(use_awaitable));
            }
            --running;
        }, asio::detached);
    io.restart();
    while (running > 0) io.run_one();
    const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
    const double cpu = cpu_seconds(server_pid) - cpu0;
    f.per_s = done / secs;
    f.cpu_per_login_us = done ? cpu * 1e6 / done : 0;
    f.per_cpu_s = cpu > 0 ? done / cpu : 0;
    if (failed) std::fprintf(stderr, "%zu logins failed\n", failed);
    return f;
}

} // namespace

int main(int argc, char** argv) try {
    if (argc >= 5 && std::string(argv[1]) == "--serve")
        return serve(argv[2], std::stoul(argv[3]), std::stoul(argv[4]));
    const std::chrono::seconds dur(argc > 1 ? std::atoi(argv[1]) : 2);

    testbed::temp_dir dir("iq-roundtrip");
    testbed::pki pki(dir.path());
    auto leaf = pki.issue("localhost");
    (void)leaf;
    asio::io_context io(1);

    // First a throwaway server to learn the XMPP message sizes... the sizes
    // are fixed by the protocol: measure them on the real run below, with the
    // raw server answering the sizes of the first measurement.
    std::size_t req = 0, resp = 0;
    iq_figures tcp_f, ws_f;
    raw_figures raw_f;
    latency_figures lat_f;
    throughput_figures thr_f;
    login_figures login_f;
    int failures = 0;
    for (int pass = 0; pass < 2; ++pass) {
        // Pass 0 learns the sizes with a short run; pass 1 measures.
        std::filesystem::remove(dir.path() / "ports");
        testbed::process srv({argv[0], "--serve", dir.path().string(), std::to_string(req ? req : 100),
                              std::to_string(resp ? resp : 100)},
                             (dir.path() / "server.log").string());
        std::uint16_t ports[5] = {};
        for (int i = 0; i < 500 && !std::filesystem::exists(dir.path() / "ports"); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        std::ifstream pf(dir.path() / "ports");
        for (auto& p : ports) pf >> p;
        if (!ports[0]) throw std::runtime_error("the server process did not start (see its log)");
        if (pass == 0) {
            auto f = iq_bench(io, client_settings(dir.path().string(), ports[0], false, false), std::chrono::seconds(0));
            req = f.req;
            resp = f.resp;
            continue;
        }
        // Each figure on its own: one failing (printed) does not hide the others.
        // IQ_ROUNDTRIP_ONLY=<substring of a name> runs one figure (profiling).
        const char* only = std::getenv("IQ_ROUNDTRIP_ONLY");
        auto attempt = [&](const char* what, auto f) {
            if (only && !std::string(what).starts_with(only)) return;
            try {
                f();
            } catch (const std::exception& e) {
                std::fprintf(stderr, "iq_roundtrip: %s failed: %s\n", what, e.what());
                failures++;
            }
        };
        attempt("raw TCP", [&] { raw_f = raw_bench(io, ports[3], ports[4], req, resp, dur, false); });
        attempt("IQ over TCP", [&] { tcp_f = iq_bench(io, client_settings(dir.path().string(), ports[0], false, false), dur); });
        attempt("latency", [&] {
            lat_f = latency_bench(io, ports[3], client_settings(dir.path().string(), ports[0], false, false), req, resp,
                                  2 * dur);
        });
        attempt("IQ over ws://", [&] { ws_f = iq_bench(io, client_settings(dir.path().string(), ports[1], true, false), dur); });
        attempt("throughput", [&] {
            thr_f = throughput_bench(io, client_settings(dir.path().string(), ports[0], false, false),
                                     client_settings(dir.path().string(), ports[1], true, false), 2 * dur);
        });
        attempt("logins", [&] {
            login_f = login_bench(io, client_settings(dir.path().string(), ports[2], false, true), srv.pid(), dur);
        });
    }
    std::printf("# message sizes: request %zu B, reply %zu B (the raw reference uses the same)\n", req, resp);
    bench("raw_tcp_p50_us", lat_f.raw_p50_us, "us");
    bench("raw_tcp_per_s", raw_f.per_s, "1/s");
    bench("raw_tcp_batched_per_s", raw_f.batched_per_s, "1/s");
    bench("iq_p50_us", lat_f.iq_p50_us, "us");
    bench("iq_p50_us_alone", tcp_f.p50_us, "us"); // measured on its own, before the 64 in flight
    bench("iq_per_s", tcp_f.per_s, "1/s");
    bench("ws_iq_p50_us", ws_f.p50_us, "us");
    bench("ws_iq_per_s", ws_f.per_s, "1/s");
    bench("iq_p50_vs_raw", lat_f.iq_p50_us / lat_f.raw_p50_us, "x");
    bench("iq_p50_us_coroutine_handler", lat_f.co_iq_p50_us, "us");
    bench("iq_p50_vs_raw_coroutine_handler", lat_f.co_iq_p50_us / lat_f.raw_p50_us, "x");
    bench("iq_per_s_alternating", thr_f.tcp_per_s, "1/s");
    bench("ws_iq_per_s_alternating", thr_f.ws_per_s, "1/s");
    bench("ws_vs_tcp_iq_per_s", 100.0 * thr_f.ws_per_s / thr_f.tcp_per_s, "%"); // the same run, alternating slices
    bench("ws_vs_tcp_iq_per_s_apart", 100.0 * ws_f.per_s / tcp_f.per_s, "%");   // the two figures above
    bench("server_logins_per_s", login_f.per_s, "1/s");
    bench("server_cpu_per_login_us", login_f.cpu_per_login_us, "us");
    bench("server_logins_per_cpu_s", login_f.per_cpu_s, "1/s");
    bench("login_pbkdf2_iterations", iterations, "");
    turn.print("client");
    return failures ? 1 : 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "iq_roundtrip: %s\n", e.what());
    return 1;
}
