#include "test_catch.hpp"

// DNS: RFC 2782 ordering (unit part, seeded generators), then lookups,
// RFC 6120 3.2 / XEP-0368 target selection and dialing against a real
// dnsmasq on loopback (integration part, no mocks). Timeouts, cancellation
// and destruction with lookups in flight are covered too (run under ASan).

#include <xmpp/net/resolver.hpp>

#include "testbed/dnsmasq.hpp"
#include "testbed/process.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

namespace asio = boost::asio;
namespace tb = xmpp::testbed;
using boost::system::error_code;
using xmpp::net::connect_target;
using xmpp::net::dns_errc;
using xmpp::net::resolver;
using xmpp::net::resolver_options;
using xmpp::net::srv_record;
using namespace std::chrono_literals;

namespace {

using clock_type = std::chrono::steady_clock;

// ---- helpers --------------------------------------------------------------

// Runs `aw` to completion on `ioc`; rethrows its exception. Other work
// (an accept loop) stays pending for the next run.
template <class T>
T run(asio::io_context& ioc, asio::awaitable<T> aw) {
    std::optional<T> out;
    std::exception_ptr ep;
    bool done = false;
    asio::co_spawn(ioc, std::move(aw), [&](std::exception_ptr e, T v) {
        ep = e;
        if (!e) out = std::move(v);
        done = true;
        ioc.stop();
    });
    ioc.restart();
    ioc.run();
    REQUIRE(done);
    if (ep) std::rethrow_exception(ep);
    REQUIRE(out);
    return std::move(*out);
}

// The error `aw` throws (system_error), or a default error_code if it succeeds.
template <class T>
error_code run_error(asio::io_context& ioc, asio::awaitable<T> aw) {
    try {
        run(ioc, std::move(aw));
    } catch (const boost::system::system_error& e) {
        return e.code();
    }
    return {};
}

error_code ec_of(dns_errc e) {
    return make_error_code(e);
}

long long ms_since(clock_type::time_point t0) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count();
}

resolver_options opts_for(const tb::dnsmasq& d) {
    resolver_options o;
    o.servers = d.servers();
    o.timeout = 1000ms;
    o.tries = 2;
    return o;
}

// A UDP socket on loopback that receives queries and never answers.
struct silent_server {
    asio::io_context ctx; // never run: the socket just sits there
    asio::ip::udp::socket sock{ctx, asio::ip::udp::endpoint(asio::ip::address_v4::loopback(), 0)};
    std::string servers() const { return "127.0.0.1:" + std::to_string(sock.local_endpoint().port()); }
};

// A TCP listener whose accept queue is full, so that further SYNs are
// dropped and a connect() to it hangs until its timeout (loopback refuses
// a closed port at once; this really drops). On `addr` (IPv4 or IPv6) and
// `port` (0: any); ok() is false when that port could not be bound.
struct black_hole {
    int listener = -1;
    std::vector<int> fillers;
    unsigned short port = 0;

    explicit black_hole(const asio::ip::address& addr = asio::ip::address_v4::loopback(), unsigned short want = 0) {
        const asio::ip::tcp::endpoint ep(addr, want);
        listener = ::socket(addr.is_v6() ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
        REQUIRE(listener >= 0);
        if (::bind(listener, ep.data(), static_cast<socklen_t>(ep.size())) != 0) return;
        REQUIRE(::listen(listener, 0) == 0);
        sockaddr_storage a{};
        socklen_t len = sizeof a;
        REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len) == 0);
        for (int i = 0; i < 3; ++i) { // fill the queue (backlog 0 holds 1)
            int fd = ::socket(a.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
            ::connect(fd, reinterpret_cast<sockaddr*>(&a), len);
            fillers.push_back(fd);
        }
        port = ntohs(a.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&a)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&a)->sin_port);
        ::usleep(50'000);
    }
    black_hole(const black_hole&) = delete;
    black_hole& operator=(const black_hole&) = delete;
    ~black_hole() {
        for (int fd : fillers) ::close(fd);
        ::close(listener);
    }
    bool ok() const { return port != 0; }
};

struct acceptor_v {
    asio::ip::tcp::acceptor acc;
    acceptor_v(asio::io_context& ioc, const asio::ip::address& a) : acc(ioc, asio::ip::tcp::endpoint(a, 0)) {}
    unsigned short port() const { return acc.local_endpoint().port(); }
};

// What dial() returned, in copyable form.
struct dialed {
    connect_target target;
    asio::ip::tcp::endpoint remote;
};

asio::awaitable<dialed> dial_info(resolver& r, std::vector<connect_target> t,
                                  std::chrono::milliseconds per_attempt = 10s) {
    auto [sock, used] = co_await xmpp::net::dial(r, std::move(t), per_attempt);
    co_return dialed{used, sock.remote_endpoint()};
}

asio::awaitable<dialed> resolve_and_dial(resolver& r, std::string domain) {
    auto targets = co_await xmpp::net::resolve_xmpp(r, domain);
    co_return co_await dial_info(r, std::move(targets));
}

std::vector<srv_record> sorted_by_target(std::vector<srv_record> v) {
    std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.target < b.target; });
    return v;
}

} // namespace

// ===== unit: RFC 2782 ordering ============================================

TEST_CASE("order_srv: ascending priority, nothing lost", "[dns][order_srv]") {
    std::mt19937 g(12345);
    std::uniform_int_distribution<int> prio(0, 4), weight(0, 50);
    for (int round = 0; round < 500; ++round) {
        std::vector<srv_record> in;
        const int n = 1 + round % 9;
        for (int i = 0; i < n; ++i) {
            std::string name = "h";
            name += std::to_string(i); // not "h" + ...: GCC 12 -Wrestrict false positive
            in.push_back({name, static_cast<std::uint16_t>(5000 + i),
                          static_cast<std::uint16_t>(prio(g)), static_cast<std::uint16_t>(weight(g))});
        }
        auto out = xmpp::net::order_srv(in, g);
        REQUIRE(out.size() == in.size());
        for (std::size_t i = 1; i < out.size(); ++i) REQUIRE(out[i - 1].priority <= out[i].priority);
        REQUIRE(sorted_by_target(out) == sorted_by_target(in));
    }
    // The overload with its own generator follows the same rule.
    auto out = xmpp::net::order_srv({{"c", 1, 30, 0}, {"a", 1, 10, 5}, {"b", 1, 20, 0}, {"a2", 1, 10, 0}});
    REQUIRE(out.size() == 4);
    CHECK(out[0].priority == 10);
    CHECK(out[1].priority == 10);
    CHECK(out[2].target == "b");
    CHECK(out[3].target == "c");
}

TEST_CASE("order_srv: weights 60/30/10 give first-place frequencies by weight", "[dns][order_srv]") {
    std::mt19937 g(4242);
    const std::vector<srv_record> in = {{"a", 1, 0, 60}, {"b", 1, 0, 30}, {"c", 1, 0, 10}};
    std::map<std::string, int> first;
    const int n = 10000;
    for (int i = 0; i < n; ++i) ++first[xmpp::net::order_srv(in, g).front().target];
    // RFC 2782 picks r uniform in [0, 100]: a for 0..60, b 61..90, c 91..100.
    CHECK(first["a"] / double(n) == Approx(61.0 / 101).margin(0.02));
    CHECK(first["b"] / double(n) == Approx(30.0 / 101).margin(0.02));
    CHECK(first["c"] / double(n) == Approx(10.0 / 101).margin(0.02));
}

TEST_CASE("order_srv: weight 0 is picked first only when the random number is 0", "[dns][order_srv]") {
    std::mt19937 g(777);
    const int n = 10000;
    SECTION("one weight-0 record against weight 10: about 1 in 11") {
        // Listed after the weighted one on purpose: the RFC moves it to the front.
        const std::vector<srv_record> in = {{"w10", 1, 0, 10}, {"w0", 1, 0, 0}};
        int zero_first = 0;
        for (int i = 0; i < n; ++i) zero_first += xmpp::net::order_srv(in, g).front().target == "w0";
        CHECK(zero_first / double(n) == Approx(1.0 / 11).margin(0.015));
    }
    SECTION("against weight 100: about 1 in 101, so nearly always after") {
        const std::vector<srv_record> in = {{"w0", 1, 0, 0}, {"w100", 1, 0, 100}};
        int zero_first = 0;
        for (int i = 0; i < n; ++i) zero_first += xmpp::net::order_srv(in, g).front().target == "w0";
        CHECK(zero_first / double(n) == Approx(1.0 / 101).margin(0.006));
        CHECK(zero_first > 0); // a small chance, not none
    }
    SECTION("weights only matter within a priority") {
        const std::vector<srv_record> in = {{"heavy", 1, 2, 1000}, {"zero", 1, 1, 0}};
        for (int i = 0; i < 1000; ++i) REQUIRE(xmpp::net::order_srv(in, g).front().target == "zero");
    }
}

TEST_CASE("dns_errc: category, c-ares texts, conditions", "[dns]") {
    const auto ec = ec_of(dns_errc::not_found);
    CHECK(std::string(ec.category().name()) == "xmpp.dns");
    CHECK(ec.message() == "Domain name not found"); // ares_strerror(ARES_ENOTFOUND)
    CHECK(ec_of(dns_errc::timeout).message() == "Timeout while contacting DNS servers");
    CHECK(ec_of(dns_errc::timeout) == boost::system::errc::timed_out);
    CHECK(ec_of(dns_errc::connection_refused) == boost::system::errc::connection_refused);
    CHECK(ec_of(dns_errc::service_unavailable).message().find("not available") != std::string::npos);
    CHECK(ec_of(dns_errc::not_found) != ec_of(dns_errc::no_data));
}

// ===== integration: a real dnsmasq =========================================

namespace {

tb::dnsmasq_options lookup_zone() {
    tb::dnsmasq_options o;
    o.srv = {
        {"_xmpp-client._tcp.srv.test", "a.srv.test", 5222, 10, 60},
        {"_xmpp-client._tcp.srv.test", "b.srv.test", 5223, 10, 40},
        {"_xmpp-client._tcp.srv.test", "c.srv.test", 5224, 20, 0},
    };
    o.hosts = {
        {"host4.test", "127.0.0.1", ""},
        {"host6.test", "", "::1"},
        {"dual.test", "192.0.2.10", "2001:db8::10"},
        {"srv.test", "127.0.0.1", ""},
    };
    return o;
}

} // namespace

TEST_CASE("resolver: SRV lookups against dnsmasq", "[dns][integration]") {
    tb::dnsmasq dns(lookup_zone());
    asio::io_context ioc;
    resolver r(ioc.get_executor(), opts_for(dns));

    SECTION("the configured records") {
        auto v = run(ioc, r.lookup_srv("_xmpp-client._tcp.srv.test"));
        const std::vector<srv_record> want = {
            {"a.srv.test", 5222, 10, 60}, {"b.srv.test", 5223, 10, 40}, {"c.srv.test", 5224, 20, 0}};
        CHECK(sorted_by_target(v) == want);
    }
    SECTION("NXDOMAIN gives no records") {
        CHECK(run(ioc, r.lookup_srv("_xmpp-client._tcp.nowhere.test")).empty());
    }
    SECTION("a name without SRV records (NODATA) gives no records") {
        CHECK(run(ioc, r.lookup_srv("host4.test")).empty());
    }
    SECTION("REFUSED is an error, not 'no records'") {
        // dnsmasq has no upstream: names outside its zones are refused.
        // c-ares 1.18 reports a REFUSED answer from every server as
        // ARES_ECONNREFUSED (later versions as ARES_EREFUSED).
        const auto ec = run_error(ioc, r.lookup_srv("_xmpp-client._tcp.example.org"));
        CHECK((ec == ec_of(dns_errc::connection_refused) || ec == ec_of(dns_errc::refused)));
    }
    SECTION("bad names give bad_name") {
        CHECK(run_error(ioc, r.lookup_srv("")) == ec_of(dns_errc::bad_name));
        CHECK(run_error(ioc, r.lookup_srv(std::string(64, 'a') + ".test")) == ec_of(dns_errc::bad_name));
        CHECK(run_error(ioc, r.lookup_srv(std::string("a\0b.test", 8))) == ec_of(dns_errc::bad_name));
        CHECK(run_error(ioc, r.lookup_srv("b\xc3\xa4r.test")) == ec_of(dns_errc::bad_name));
    }
    SECTION("many lookups at once") {
        auto many = [&r]() -> asio::awaitable<std::size_t> {
            using namespace asio::experimental::awaitable_operators;
            auto [a, b, c] = co_await (r.lookup_srv("_xmpp-client._tcp.srv.test") &&
                                       r.lookup_srv("_xmpp-client._tcp.srv.test") &&
                                       r.lookup_srv("_xmpp-client._tcp.nowhere.test"));
            co_return a.size() + b.size() + c.size();
        };
        CHECK(run(ioc, many()) == 6);
    }
}

TEST_CASE("resolver: address lookups against dnsmasq", "[dns][integration]") {
    tb::dnsmasq dns(lookup_zone());
    asio::io_context ioc;
    resolver r(ioc.get_executor(), opts_for(dns));
    using asio::ip::make_address;

    SECTION("A only") {
        CHECK(run(ioc, r.lookup_host("host4.test")) == std::vector{make_address("127.0.0.1")});
    }
    SECTION("AAAA only") {
        CHECK(run(ioc, r.lookup_host("host6.test")) == std::vector{make_address("::1")});
    }
    SECTION("A and AAAA") {
        auto v = run(ioc, r.lookup_host("dual.test"));
        REQUIRE(v.size() == 2);
        std::set<asio::ip::address> got(v.begin(), v.end());
        CHECK(got == std::set{make_address("192.0.2.10"), make_address("2001:db8::10")});
    }
    SECTION("NXDOMAIN and NODATA are errors") {
        CHECK(run_error(ioc, r.lookup_host("nowhere.test")) == ec_of(dns_errc::not_found));
        CHECK(run_error(ioc, r.lookup_host("_xmpp-client._tcp.srv.test")) == ec_of(dns_errc::no_data));
    }
    SECTION("IP literals come back without a query") {
        dns.stop(); // nobody to ask
        CHECK(run(ioc, r.lookup_host("192.0.2.7")) == std::vector{make_address("192.0.2.7")});
        CHECK(run(ioc, r.lookup_host("[2001:db8::1]")) == std::vector{make_address("2001:db8::1")});
        CHECK(run(ioc, r.lookup_host("::1")) == std::vector{make_address("::1")});
    }
    SECTION("bad names") {
        CHECK(run_error(ioc, r.lookup_host("")) == ec_of(dns_errc::bad_name));
        CHECK(run_error(ioc, r.lookup_host("b\xc3\xa4r.test")) == ec_of(dns_errc::bad_name));
    }
}

TEST_CASE("resolver: completions run on the awaiting coroutine's executor", "[dns][integration]") {
    tb::dnsmasq dns(lookup_zone());
    asio::io_context ioc;
    resolver r(ioc.get_executor(), opts_for(dns)); // the plain io_context executor
    auto strand = asio::make_strand(ioc);
    int on_strand = 0;
    asio::co_spawn(
        strand,
        [&]() -> asio::awaitable<void> {
            co_await r.lookup_srv("_xmpp-client._tcp.srv.test");
            on_strand += strand.running_in_this_thread();
            co_await r.lookup_host("host4.test");
            on_strand += strand.running_in_this_thread();
            try {
                co_await r.lookup_host("nowhere.test");
            } catch (const boost::system::system_error&) {
                on_strand += strand.running_in_this_thread();
            }
        },
        asio::detached);
    ioc.run();
    CHECK(on_strand == 3);
}

namespace {

tb::dnsmasq_options xmpp_zone() {
    tb::dnsmasq_options o;
    o.srv = {
        // mixed.test: both services, priorities interleaved (XEP-0368 4).
        {"_xmpps-client._tcp.mixed.test", "tls1.mixed.test", 5223, 5, 10},
        {"_xmpps-client._tcp.mixed.test", "tls2.mixed.test", 5224, 20, 0},
        {"_xmpp-client._tcp.mixed.test", "tcp1.mixed.test", 5222, 5, 20},
        {"_xmpp-client._tcp.mixed.test", "tcp2.mixed.test", 5225, 10, 1},
        {"_xmpp-client._tcp.mixed.test", "tcp3.mixed.test", 5226, 30, 0},
        // dot.test: no XMPP service at all (RFC 6120 3.2.1).
        {"_xmpp-client._tcp.dot.test", ".", 0, 0, 0},
        // dottls.test: no direct TLS, STARTTLS offered (XEP-0368 5).
        {"_xmpps-client._tcp.dottls.test", ".", 0, 0, 0},
        {"_xmpp-client._tcp.dottls.test", "xmpp.dottls.test", 5222, 0, 0},
        // dottlsonly.test: no direct TLS and no _xmpp-client records.
        {"_xmpps-client._tcp.dottlsonly.test", ".", 0, 0, 0},
        // tlsonly.test: direct TLS only.
        {"_xmpps-client._tcp.tlsonly.test", "xmpp.tlsonly.test", 443, 0, 0},
    };
    o.hosts = {{"nosrv.test", "127.0.0.1", ""}};
    return o;
}

} // namespace

TEST_CASE("resolve_xmpp: RFC 6120 3.2 and XEP-0368 targets", "[dns][integration]") {
    tb::dnsmasq dns(xmpp_zone());
    asio::io_context ioc;
    resolver r(ioc.get_executor(), opts_for(dns));
    using xmpp::net::resolve_xmpp;

    SECTION("xmpps and xmpp records merged by priority, direct_tls from the service") {
        auto t = run(ioc, resolve_xmpp(r, "mixed.test"));
        REQUIRE(t.size() == 5);
        // Priority 5 holds one of each service, in weighted random order.
        const std::set<std::pair<std::string, bool>> p5 = {{t[0].host, t[0].direct_tls},
                                                           {t[1].host, t[1].direct_tls}};
        CHECK(p5 == std::set<std::pair<std::string, bool>>{{"tls1.mixed.test", true}, {"tcp1.mixed.test", false}});
        CHECK(t[2] == connect_target{"tcp2.mixed.test", 5225, false});
        CHECK(t[3] == connect_target{"tls2.mixed.test", 5224, true});
        CHECK(t[4] == connect_target{"tcp3.mixed.test", 5226, false});
        for (int i = 0; i < 2; ++i) CHECK(t[i].port == (t[i].direct_tls ? 5223 : 5222));
    }
    SECTION("weights are mixed across both services") {
        // Priority 5: tls1 weight 10, tcp1 weight 20: tcp1 first ~20/31.
        int tcp_first = 0;
        const int n = 400;
        for (int i = 0; i < n; ++i) tcp_first += run(ioc, resolve_xmpp(r, "mixed.test")).front().host == "tcp1.mixed.test";
        CHECK(tcp_first / double(n) == Approx(20.0 / 31).margin(0.1));
    }
    SECTION("a '.' _xmpp-client target: service unavailable, no fallback") {
        CHECK(run_error(ioc, resolve_xmpp(r, "dot.test")) == ec_of(dns_errc::service_unavailable));
    }
    SECTION("a '.' _xmpps-client target: only the STARTTLS targets") {
        auto t = run(ioc, resolve_xmpp(r, "dottls.test"));
        CHECK(t == std::vector<connect_target>{{"xmpp.dottls.test", 5222, false}});
    }
    SECTION("a '.' _xmpps-client target and no _xmpp-client: no A/AAAA fallback") {
        CHECK(run_error(ioc, resolve_xmpp(r, "dottlsonly.test")) == ec_of(dns_errc::service_unavailable));
    }
    SECTION("direct TLS only") {
        auto t = run(ioc, resolve_xmpp(r, "tlsonly.test"));
        CHECK(t == std::vector<connect_target>{{"xmpp.tlsonly.test", 443, true}});
    }
    SECTION("no SRV records: the domain on port 5222") {
        CHECK(run(ioc, resolve_xmpp(r, "nosrv.test")) == std::vector<connect_target>{{"nosrv.test", 5222, false}});
        CHECK(run(ioc, resolve_xmpp(r, "nxdomain.test")) ==
              std::vector<connect_target>{{"nxdomain.test", 5222, false}});
    }
    SECTION("failed SRV lookups count as no answer (RFC 6120 3.2.2): fallback") {
        CHECK(run(ioc, resolve_xmpp(r, "example.org")) == std::vector<connect_target>{{"example.org", 5222, false}});
    }
    SECTION("an IP literal domain: no lookup") {
        dns.stop();
        CHECK(run(ioc, resolve_xmpp(r, "192.0.2.5")) == std::vector<connect_target>{{"192.0.2.5", 5222, false}});
        CHECK(run(ioc, resolve_xmpp(r, "[::1]")) == std::vector<connect_target>{{"[::1]", 5222, false}});
    }
    SECTION("non-ASCII (U-label) or empty domain: bad_name") {
        CHECK(run_error(ioc, resolve_xmpp(r, "\xc3\xa9xample.test")) == ec_of(dns_errc::bad_name));
        CHECK(run_error(ioc, resolve_xmpp(r, "")) == ec_of(dns_errc::bad_name));
    }
}

TEST_CASE("dial: SRV targets on loopback", "[dns][integration]") {
    asio::io_context ioc;
    acceptor_v up(ioc, asio::ip::make_address("127.0.0.1"));
    const unsigned short dead_port = tb::free_tcp_port(); // nobody listens there
    int accepted = 0;
    std::function<void()> accept_loop = [&] {
        up.acc.async_accept([&](error_code ec, asio::ip::tcp::socket) {
            if (ec) return;
            ++accepted;
            accept_loop();
        });
    };
    accept_loop();

    tb::dnsmasq_options o;
    o.srv = {
        // dial.test: the STARTTLS target comes first but is dead.
        {"_xmpp-client._tcp.dial.test", "dead.dial.test", dead_port, 1, 0},
        {"_xmpps-client._tcp.dial.test", "up.dial.test", up.port(), 2, 0},
        // plain.test: one live STARTTLS target.
        {"_xmpp-client._tcp.plain.test", "up.dial.test", up.port(), 0, 0},
        // gone.test: a target without addresses, then a live one.
        {"_xmpp-client._tcp.gone.test", "missing.dial.test", up.port(), 0, 0},
        {"_xmpp-client._tcp.gone.test", "up.dial.test", up.port(), 9, 0},
    };
    o.hosts = {{"dead.dial.test", "127.0.0.1", ""}, {"up.dial.test", "127.0.0.1", ""},
               {"dual.dial.test", "127.0.0.1", "::1"}};
    tb::dnsmasq dns(o);
    resolver r(ioc.get_executor(), opts_for(dns));

    SECTION("skips a dead target, reports direct_tls of the one used") {
        auto d = run(ioc, resolve_and_dial(r, "dial.test"));
        CHECK(d.target == connect_target{"up.dial.test", up.port(), true});
        CHECK(d.remote == asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), up.port()));
        ioc.restart();
        for (int i = 0; i < 50 && accepted == 0; ++i) ioc.run_one_for(20ms);
        CHECK(accepted == 1);
    }
    SECTION("a STARTTLS target") {
        auto d = run(ioc, resolve_and_dial(r, "plain.test"));
        CHECK(d.target == connect_target{"up.dial.test", up.port(), false});
    }
    SECTION("skips a target whose name does not resolve") {
        auto d = run(ioc, resolve_and_dial(r, "gone.test"));
        CHECK(d.target.host == "up.dial.test");
    }
    SECTION("tries every address of a target in lookup order") {
        auto addrs = run(ioc, r.lookup_host("dual.dial.test"));
        REQUIRE(addrs.size() == 2);
        // Listen only on the second address: the first attempt is refused.
        acceptor_v second(ioc, addrs[1]);
        auto d = run(ioc, dial_info(r, {{"dual.dial.test", second.port(), false}}));
        CHECK(d.remote.address() == addrs[1]);
    }
    SECTION("a connect that hangs is abandoned after per_attempt") {
        black_hole hole;
        const auto t0 = clock_type::now();
        auto d = run(ioc, dial_info(r, {{"127.0.0.1", hole.port, true}, {"up.dial.test", up.port(), false}}, 300ms));
        const auto ms = ms_since(t0);
        CHECK(d.target.host == "up.dial.test");
        CHECK(ms >= 290);
        CHECK(ms < 3000);
    }
    SECTION("an address that drops SYNs costs per_attempt, then the next address of the target") {
        auto addrs = run(ioc, r.lookup_host("dual.dial.test"));
        REQUIRE(addrs.size() == 2);
        // The first address drops SYNs, the second listens on the same port.
        std::optional<acceptor_v> second;
        std::optional<black_hole> first;
        for (int i = 0; i < 20 && !(first && first->ok()); ++i) {
            second.emplace(ioc, addrs[1]);
            first.emplace(addrs[0], second->port()); // that port may be taken on the other family
        }
        REQUIRE(first->ok());
        const auto t0 = clock_type::now();
        auto d = run(ioc, dial_info(r, {{"dual.dial.test", second->port(), false}}, 300ms));
        const auto ms = ms_since(t0);
        CHECK(d.remote == asio::ip::tcp::endpoint(addrs[1], second->port()));
        CHECK(ms >= 290); // the first attempt ran into its timeout...
        CHECK(ms < 1500); // ...and only into that one
    }
    SECTION("per_attempt is per address: three silent addresses cost three timeouts") {
        black_hole a, b, c;
        const auto t0 = clock_type::now();
        const auto ec = run_error(ioc, dial_info(r, {{"127.0.0.1", a.port, false}, {"127.0.0.1", b.port, false},
                                                     {"127.0.0.1", c.port, false}}, 200ms));
        const auto ms = ms_since(t0);
        CHECK(ec == asio::error::timed_out);
        CHECK(ms >= 590);
        CHECK(ms < 2000);
    }
    SECTION("all targets fail: the last error") {
        CHECK(run_error(ioc, dial_info(r, {{"missing.dial.test", 1, false}, {"dead.dial.test", dead_port, false}})) ==
              asio::error::connection_refused);
        CHECK(run_error(ioc, dial_info(r, {{"dead.dial.test", dead_port, false}, {"missing.dial.test", 1, false}})) ==
              ec_of(dns_errc::not_found));
        black_hole hole;
        CHECK(run_error(ioc, dial_info(r, {{"127.0.0.1", hole.port, false}}, 200ms)) == asio::error::timed_out);
    }
    SECTION("no targets") {
        CHECK(run_error(ioc, dial_info(r, {})) == ec_of(dns_errc::no_targets));
    }
}

namespace {

// Sets environment variables for the life of the object (single-threaded test).
class env_override {
public:
    env_override(std::vector<std::pair<std::string, std::string>> vars) {
        for (auto& [name, value] : vars) {
            const char* old = std::getenv(name.c_str());
            saved_.push_back({name, old ? std::optional<std::string>(old) : std::nullopt});
            ::setenv(name.c_str(), value.c_str(), 1);
        }
    }
    env_override(const env_override&) = delete;
    env_override& operator=(const env_override&) = delete;
    ~env_override() { restore(); }
    void restore() {
        for (auto& [name, old] : saved_) {
            if (old)
                ::setenv(name.c_str(), old->c_str(), 1);
            else
                ::unsetenv(name.c_str());
        }
        saved_.clear();
    }

private:
    std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

} // namespace

TEST_CASE("resolver: names are looked up as they are, never with search domains", "[dns][integration]") {
    tb::dnsmasq_options z;
    z.srv = {{"_xmpp-client._tcp.search.test", "xmpp.search.test", 5222, 0, 0}};
    z.hosts = {
        {"both.test", "127.0.0.1", ""},
        {"both.test.corp.test", "127.0.0.2", ""},
        {"suffixed-only.test.corp.test", "127.0.0.3", ""},
        {"xmpp.search.test.corp.test", "127.0.0.4", ""},
        {"fallback.test.corp.test", "127.0.0.5", ""},
    };
    tb::dnsmasq dns(z);
    // c-ares takes a search list from $LOCALDOMAIN as from resolv.conf's
    // "search" line; ndots:5 would even try the suffixed name first. Both
    // are read when the channel is made.
    env_override env({{"LOCALDOMAIN", "corp.test"}, {"RES_OPTIONS", "ndots:5"}});
    asio::io_context ioc;
    resolver r(ioc.get_executor(), opts_for(dns));
    env.restore();
    using asio::ip::make_address;

    SECTION("a name that exists as it is and with the suffix") {
        CHECK(run(ioc, r.lookup_host("both.test")) == std::vector{make_address("127.0.0.1")});
    }
    SECTION("a name that exists only with the suffix") {
        CHECK(run_error(ioc, r.lookup_host("suffixed-only.test")) == ec_of(dns_errc::not_found));
    }
    SECTION("an SRV target") {
        auto t = run(ioc, xmpp::net::resolve_xmpp(r, "search.test"));
        REQUIRE(t == std::vector<connect_target>{{"xmpp.search.test", 5222, false}});
        CHECK(run_error(ioc, dial_info(r, t, 500ms)) == ec_of(dns_errc::not_found));
    }
    SECTION("the RFC 6120 3.2.2 fallback domain") {
        auto t = run(ioc, xmpp::net::resolve_xmpp(r, "fallback.test"));
        REQUIRE(t == std::vector<connect_target>{{"fallback.test", 5222, false}});
        CHECK(run_error(ioc, dial_info(r, t, 500ms)) == ec_of(dns_errc::not_found));
    }
    SECTION("localhost still comes from /etc/hosts (or RFC 6761 6.3)") {
        const auto v = run(ioc, r.lookup_host("localhost"));
        REQUIRE_FALSE(v.empty());
        for (auto& a : v) CHECK(a.is_loopback());
    }
}

TEST_CASE("resolver: timeouts, cancellation and destruction", "[dns][integration]") {
    silent_server silent;
    asio::io_context ioc;
    resolver_options o;
    o.servers = silent.servers();
    o.timeout = 200ms;
    o.tries = 2; // c-ares: 200 ms, then 400 ms

    SECTION("a server that never answers: timeout within the deadline") {
        resolver r(ioc.get_executor(), o);
        auto t0 = clock_type::now();
        CHECK(run_error(ioc, r.lookup_srv("_xmpp-client._tcp.srv.test")) == ec_of(dns_errc::timeout));
        auto ms = ms_since(t0);
        CHECK(ms >= 500);
        CHECK(ms < 2000);
        t0 = clock_type::now();
        CHECK(run_error(ioc, r.lookup_host("host4.test")) == ec_of(dns_errc::timeout));
        CHECK(ms_since(t0) < 2000);
    }
    SECTION("resolve and dial against a dead DNS server end with its error, bounded") {
        resolver r(ioc.get_executor(), o);
        const auto t0 = clock_type::now();
        CHECK(run_error(ioc, resolve_and_dial(r, "srv.test")) == ec_of(dns_errc::timeout));
        CHECK(ms_since(t0) < 4000);
    }
    SECTION("a closed port: connection refused, quickly") {
        o.servers = "127.0.0.1:" + std::to_string(tb::free_udp_tcp_port());
        resolver r(ioc.get_executor(), o);
        const auto t0 = clock_type::now();
        CHECK(run_error(ioc, r.lookup_srv("_xmpp-client._tcp.srv.test")) == ec_of(dns_errc::connection_refused));
        CHECK(ms_since(t0) < 500);
    }
    SECTION("cancel() aborts pending lookups; the resolver stays usable") {
        o.timeout = 1000ms; // cancellation must come well before it
        o.tries = 1;
        tb::dnsmasq dns(lookup_zone());
        o.servers = silent.servers() + "," + dns.servers(); // the second answers
        resolver r(ioc.get_executor(), o);
        std::vector<error_code> got;
        auto lookup = [&](std::string name) -> asio::awaitable<void> {
            try {
                co_await r.lookup_srv(name);
                got.push_back({});
            } catch (const boost::system::system_error& e) {
                got.push_back(e.code());
            }
        };
        asio::co_spawn(ioc, lookup("_xmpp-client._tcp.srv.test"), asio::detached);
        asio::co_spawn(ioc, [&]() -> asio::awaitable<void> { co_await r.lookup_host("host4.test"); }, asio::detached);
        asio::steady_timer t(ioc, 50ms);
        t.async_wait([&](error_code) { r.cancel(); });
        const auto t0 = clock_type::now();
        ioc.run();
        CHECK(ms_since(t0) < 700); // well before the 1 s timeout
        REQUIRE(got.size() == 1);
        CHECK(got[0] == asio::error::operation_aborted);
        // After the silent server's timeout c-ares asks dnsmasq.
        CHECK(run(ioc, r.lookup_srv("_xmpp-client._tcp.srv.test")).size() == 3);
    }
    SECTION("Asio cancellation of the awaiting coroutine abandons only that lookup") {
        o.timeout = 1000ms; // cancellation must come well before it
        o.tries = 1;
        resolver r(ioc.get_executor(), o);
        const auto t0 = clock_type::now();
        long long resumed_after = -1;
        auto race = [&]() -> asio::awaitable<int> {
            using namespace asio::experimental::awaitable_operators;
            asio::steady_timer t(co_await asio::this_coro::executor, 50ms);
            auto v = co_await (r.lookup_srv("_xmpp-client._tcp.srv.test") || t.async_wait(asio::use_awaitable));
            resumed_after = ms_since(t0);
            co_return static_cast<int>(v.index());
        };
        CHECK(run(ioc, race()) == 1); // the timer won
        CHECK(resumed_after >= 0);
        CHECK(resumed_after < 700);
        // The abandoned query still runs in c-ares until its timeout; a
        // later lookup is unaffected.
        CHECK(run_error(ioc, r.lookup_srv("_xmpp-client._tcp.other.test")) == ec_of(dns_errc::timeout));
    }
    SECTION("cancel() aborts a dial() in its TCP connect at once; the resolver stays usable") {
        black_hole hole;
        resolver r(ioc.get_executor(), o);
        asio::steady_timer t(ioc, 100ms);
        t.async_wait([&](error_code) { r.cancel(); });
        const auto t0 = clock_type::now();
        CHECK(run_error(ioc, dial_info(r, {{"127.0.0.1", hole.port, false}}, 5s)) == asio::error::operation_aborted);
        CHECK(ms_since(t0) < 1000); // not the 5 s attempt timeout
        // The next dial is not affected by the earlier cancel().
        asio::ip::tcp::acceptor up(ioc, asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 0));
        auto d = run(ioc, dial_info(r, {{"127.0.0.1", up.local_endpoint().port(), false}}));
        CHECK(d.remote.port() == up.local_endpoint().port());
    }
    SECTION("destroying the resolver during a dial()'s TCP connect") {
        black_hole hole;
        auto r = std::make_unique<resolver>(ioc.get_executor(), o);
        asio::steady_timer t(ioc, 100ms);
        t.async_wait([&](error_code) { r.reset(); });
        const auto t0 = clock_type::now();
        CHECK(run_error(ioc, dial_info(*r, {{"127.0.0.1", hole.port, false}, {"127.0.0.1", hole.port, false}}, 5s)) ==
              asio::error::operation_aborted);
        CHECK(ms_since(t0) < 1000);
        CHECK_FALSE(r);
    }
    SECTION("destroying the resolver with lookups in flight") {
        o.timeout = 1000ms; // cancellation must come well before it
        o.tries = 1;
        auto r = std::make_unique<resolver>(ioc.get_executor(), o);
        std::vector<error_code> got;
        auto record = [&](auto aw) -> asio::awaitable<void> {
            try {
                co_await std::move(aw);
                got.push_back({});
            } catch (const boost::system::system_error& e) {
                got.push_back(e.code());
            }
        };
        asio::co_spawn(ioc, record(r->lookup_srv("_xmpp-client._tcp.srv.test")), asio::detached);
        asio::co_spawn(ioc, record(r->lookup_host("host4.test")), asio::detached);
        asio::co_spawn(ioc, record(xmpp::net::resolve_xmpp(*r, "srv.test")), asio::detached);
        asio::co_spawn(ioc, record(dial_info(*r, {{"host4.test", 1, false}})), asio::detached);
        asio::steady_timer t(ioc, 50ms);
        t.async_wait([&](error_code) { r.reset(); });
        const auto t0 = clock_type::now();
        ioc.run(); // returns: nothing left behind
        CHECK(ms_since(t0) < 700); // well before the 1 s timeout
        REQUIRE(got.size() == 4);
        for (auto& ec : got) CHECK(ec == asio::error::operation_aborted);
    }
    SECTION("destroying the resolver after an abandoned lookup") {
        auto r = std::make_unique<resolver>(ioc.get_executor(), o);
        auto race = [&]() -> asio::awaitable<void> {
            using namespace asio::experimental::awaitable_operators;
            asio::steady_timer t(co_await asio::this_coro::executor, 20ms);
            co_await (r->lookup_host("host4.test") || t.async_wait(asio::use_awaitable));
            r.reset();
        };
        run(ioc, [&]() -> asio::awaitable<int> {
            co_await race();
            co_return 0;
        }());
        CHECK_FALSE(r);
    }
    SECTION("malformed server list") {
        o.servers = "not an address";
        try {
            resolver bad(ioc.get_executor(), o);
            FAIL("no exception");
        } catch (const boost::system::system_error& e) {
            CHECK(e.code() == ec_of(dns_errc::bad_string));
        }
    }
}
