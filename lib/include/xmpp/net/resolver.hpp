// DNS for XMPP clients: SRV and address lookups on c-ares driven by an Asio
// executor, RFC 6120 3.2 / XEP-0368 connection targets, and dialing them.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include <xmpp/transport.hpp>

namespace xmpp::net {

/// DNS failures. Values 1..25 are c-ares statuses (same numbers as
/// ARES_E*; message() is ares_strerror's text); 100 and up are this
/// library's. Cancellation (ARES_ECANCELLED, ARES_EDESTRUCTION) is reported
/// as asio::error::operation_aborted, never as a dns_errc.
enum class dns_errc {
    no_data = 1,             ///< the name exists but has no record of that type
    format_error = 2,        ///< the server could not parse the query (FORMERR)
    server_failure = 3,      ///< SERVFAIL
    not_found = 4,           ///< NXDOMAIN
    not_implemented = 5,     ///< NOTIMP
    refused = 6,             ///< REFUSED
    bad_query = 7,           ///< the query could not be built
    bad_name = 8,            ///< not a valid domain name
    bad_family = 9,
    bad_response = 10,       ///< the reply is malformed
    connection_refused = 11, ///< no server could be reached
    timeout = 12,            ///< no answer within timeout * tries
    eof = 13,
    file = 14,               ///< /etc/resolv.conf could not be read
    no_memory = 15,
    bad_string = 17,         ///< e.g. a malformed resolver_options::servers list
    bad_flags = 18,
    no_name = 19,
    bad_hints = 20,
    not_initialized = 21,
    /// The domain publishes that the service is decidedly not available
    /// there: an SRV target of "." (RFC 2782, RFC 6120 3.2.1, XEP-0368 5).
    service_unavailable = 100,
    /// dial() was given no connection targets.
    no_targets = 101,
};

/// The category of dns_errc; name() is "xmpp.dns". timeout is equivalent
/// to errc::timed_out, connection_refused to errc::connection_refused.
const boost::system::error_category& dns_category() noexcept;

inline boost::system::error_code make_error_code(dns_errc e) noexcept {
    return {static_cast<int>(e), dns_category()};
}

/// One SRV resource record (RFC 2782). A target of "." means "no service".
struct srv_record {
    std::string target;
    std::uint16_t port = 0;
    std::uint16_t priority = 0;
    std::uint16_t weight = 0;

    friend bool operator==(const srv_record&, const srv_record&) = default;
};

/// A host and port to connect to.
struct connect_target {
    std::string host;
    std::uint16_t port = 0;
    /// TLS right after the TCP connect, no STARTTLS (XEP-0368: the target
    /// came from an _xmpps-client record).
    bool direct_tls = false;

    friend bool operator==(const connect_target&, const connect_target&) = default;
};

struct resolver_options {
    /// Name servers, c-ares "host:port,..." syntax ("127.0.0.1:5353",
    /// "[::1]:53"); empty = those of /etc/resolv.conf.
    std::string servers;
    /// Time for the first try of a query; c-ares doubles it on each later
    /// round over the servers, so one query may take up to
    /// timeout * (2^tries - 1) with one server.
    std::chrono::milliseconds timeout{3000};
    /// How many times each server is tried.
    int tries = 2;
};

/// An asynchronous DNS resolver: one c-ares channel whose sockets and retry
/// timer run on an Asio executor (no threads, no blocking calls).
///
/// Not thread safe: construct it on the executor (strand) of the
/// coroutines that use it and make every call from there. Lookups complete
/// on the awaiting coroutine's executor. One per session, or one shared by
/// the sessions of one strand.
class resolver {
public:
    /// A channel on `ex`. Throws boost::system::system_error (dns_errc) when
    /// c-ares cannot be initialised or `opts.servers` is malformed.
    explicit resolver(asio::any_io_executor ex, resolver_options opts = {});
    /// Pending lookups complete with asio::error::operation_aborted (posted,
    /// never inline).
    ~resolver();
    resolver(const resolver&) = delete;
    resolver& operator=(const resolver&) = delete;

    asio::any_io_executor get_executor() const noexcept;

    /// SRV records of `name` (e.g. "_xmpp-client._tcp.example.org"), in
    /// the order of the reply (use order_srv() to order them). NXDOMAIN and
    /// "no SRV record" give an empty vector; other failures throw
    /// boost::system::system_error with a dns_errc. Cancellation (cancel(),
    /// the destructor, or Asio cancellation of the awaiting coroutine)
    /// throws asio::error::operation_aborted.
    asio::awaitable<std::vector<srv_record>> lookup_srv(std::string name);

    /// IPv4 and IPv6 addresses of `host` (A and AAAA, /etc/hosts first as
    /// c-ares's default lookup order says), sorted per RFC 6724, without
    /// duplicates. `host` is looked up as it is: never with the search
    /// domains of resolv.conf or $LOCALDOMAIN, nor $HOSTALIASES. An IP literal ("192.0.2.1", "::1", "[::1]") is returned
    /// as is without a query. Throws system_error: dns_errc::not_found for
    /// NXDOMAIN, dns_errc::no_data when there are no addresses, other
    /// dns_errc values, or operation_aborted as lookup_srv().
    asio::awaitable<std::vector<asio::ip::address>> lookup_host(std::string host);

    /// Every pending lookup, resolve_xmpp() and dial() completes with
    /// operation_aborted, at once: a TCP connect of dial() in progress is
    /// ended by closing its socket. The resolver stays usable for new calls.
    void cancel();

    struct impl;

private:
    friend asio::awaitable<std::vector<connect_target>> resolve_xmpp(resolver&, std::string);
    friend asio::awaitable<std::pair<asio::ip::tcp::socket, connect_target>>
    dial(resolver&, std::vector<connect_target>, std::chrono::milliseconds);

    std::shared_ptr<impl> impl_;
};

namespace detail {

/// RFC 2782 ordering of `items` by the SRV fields `rec(item)` returns:
/// priority ascending; within one priority, repeated weighted random
/// selection where weight-0 records are listed first and so are picked
/// only when the random number (uniform in [0, sum of weights]) is 0.
template <class T, class Rec, class URBG>
std::vector<T> order_srv_by(std::vector<T> items, Rec rec, URBG& g) {
    std::stable_sort(items.begin(), items.end(), [&](const T& a, const T& b) {
        return rec(a).priority < rec(b).priority;
    });
    std::vector<T> out;
    out.reserve(items.size());
    auto first = items.begin();
    while (first != items.end()) {
        auto last = first;
        while (last != items.end() && rec(*last).priority == rec(*first).priority) ++last;
        // RFC 2782: weight-0 records at the beginning of the unordered list.
        std::stable_partition(first, last, [&](const T& t) { return rec(t).weight == 0; });
        for (auto it = first; it != last; ++it) {
            std::uint64_t sum = 0;
            for (auto j = it; j != last; ++j) sum += rec(*j).weight;
            std::uniform_int_distribution<std::uint64_t> pick(0, sum);
            const std::uint64_t r = pick(g);
            // The first record whose running sum is >= r.
            std::uint64_t running = 0;
            auto chosen = it;
            for (auto j = it; j != last; ++j) {
                running += rec(*j).weight;
                if (running >= r) {
                    chosen = j;
                    break;
                }
            }
            // Keep the rest in list order (weight-0 ones stay in front).
            std::rotate(it, chosen, std::next(chosen));
            out.push_back(std::move(*it));
        }
        first = last;
    }
    return out;
}

} // namespace detail

/// Orders SRV records for connection attempts (RFC 2782 "Usage rules"):
/// ascending priority; within a priority, weighted random selection with
/// random numbers from `g`. Records with weight 0 have a very small chance
/// to come first when others have weight (1 in sum+1).
template <class URBG>
std::vector<srv_record> order_srv(std::vector<srv_record> records, URBG& g) {
    return detail::order_srv_by(std::move(records),
                                [](const srv_record& r) -> const srv_record& { return r; }, g);
}

/// As above with a per-thread generator seeded from std::random_device.
std::vector<srv_record> order_srv(std::vector<srv_record> records);

/// The connection targets of an XMPP client for `domain` (an ASCII / A-label
/// domain name, or an IP literal which is returned as {domain, 5222, false}
/// without a query):
/// SRV _xmpps-client._tcp (direct TLS, XEP-0368) and _xmpp-client._tcp
/// (RFC 6120 3.2.1) are looked up concurrently and merged as one RFC 2782
/// set (priorities and weights mixed, XEP-0368 4 rule 1), then ordered.
/// A set that is a single "." target drops out (that service is not
/// offered). When no target remains and some set said ".", throws
/// system_error(dns_errc::service_unavailable): no A/AAAA fallback then
/// (RFC 6120 3.2.1, XEP-0368 5). When neither name has records (NXDOMAIN,
/// no data, or a failed lookup: "no answer", RFC 6120 3.2.2) returns the
/// fallback {domain, 5222, false}. Never returns an empty vector.
/// Throws dns_errc::bad_name for a non-ASCII domain, operation_aborted on
/// cancellation.
asio::awaitable<std::vector<connect_target>> resolve_xmpp(resolver& r, std::string domain);

/// Connects to the first target that accepts a TCP connection: targets in
/// order, each target's addresses in lookup_host() order (RFC 6120 3.2.1
/// steps 4-6). `per_attempt` limits each TCP connect, i.e. one address:
/// an address that does not answer (SYNs dropped) fails with
/// asio::error::timed_out after it and the next address, or target, is
/// tried with a fresh `per_attempt`. It is not a deadline for the whole
/// dial(), which may take up to (number of addresses) * per_attempt plus
/// the lookups; bound that from outside if needed. Returns the connected
/// socket, whose executor is the awaiting coroutine's, and the target used.
/// When every attempt fails throws system_error with the last error (of a
/// lookup or a connect); dns_errc::no_targets for an empty list.
/// Cancellation of the awaiting coroutine, resolver::cancel() or the
/// resolver's destruction throws operation_aborted at once, also during a
/// TCP connect.
asio::awaitable<std::pair<asio::ip::tcp::socket, connect_target>>
dial(resolver& r, std::vector<connect_target> targets,
     std::chrono::milliseconds per_attempt = std::chrono::seconds(10));

} // namespace xmpp::net

template <>
struct boost::system::is_error_code_enum<xmpp::net::dns_errc> : std::true_type {};
