// A throwaway DNS server for tests: a real dnsmasq on 127.0.0.1 at a free
// port, serving only the SRV and A/AAAA records it is given.
#pragma once
#include <chrono>
#include <string>
#include <vector>

#include "process.hpp"

namespace xmpp::testbed {

/// One SRV record: `name` is the owner ("_xmpp-client._tcp.example.test");
/// a `target` of "." publishes "service not available" (RFC 2782).
struct dns_srv_record {
    std::string name;
    std::string target;
    unsigned short port = 0;
    unsigned short priority = 0;
    unsigned short weight = 0;
};

/// A and/or AAAA records for `name`; leave an address empty to omit it.
struct dns_host_record {
    std::string name;
    std::string ipv4;
    std::string ipv6;
};

struct dnsmasq_options {
    /// Zones answered from these records only (dnsmasq --local=/zone/):
    /// unknown names in them get NXDOMAIN, names with other record types
    /// NODATA. Names outside every zone get REFUSED (no upstream servers).
    std::vector<std::string> zones = {"test"};
    std::vector<dns_srv_record> srv;
    std::vector<dns_host_record> hosts;
    /// More dnsmasq arguments, e.g. "--log-queries".
    std::vector<std::string> extra_args;
    /// dnsmasq's stderr; empty = /tmp/xmpp-testbed-dnsmasq-<port>.log.
    std::string log_file;
    /// Deadline for the first answer to a UDP query.
    std::chrono::milliseconds start_timeout = std::chrono::seconds(10);
};

/// dnsmasq in the foreground (--no-daemon: no fork, no pid file, no change
/// of user), on 127.0.0.1 UDP and TCP at one free port, reading no
/// /etc/resolv.conf, /etc/hosts or config file. Stopped by pid in the
/// destructor. Not thread safe.
class dnsmasq {
public:
    /// Starts dnsmasq and waits until it answers a UDP query. Retries with
    /// another port when it exits at once (port taken meanwhile). Throws
    /// std::runtime_error (with the log's tail) when it never answers.
    explicit dnsmasq(dnsmasq_options opts);
    dnsmasq(dnsmasq&&) noexcept = default;
    dnsmasq& operator=(dnsmasq&&) noexcept = default;
    ~dnsmasq() = default;

    unsigned short port() const noexcept { return port_; }
    /// "127.0.0.1:<port>", for xmpp::net::resolver_options::servers.
    std::string servers() const;
    const std::string& log_file() const noexcept { return log_; }
    /// A name only this instance answers (an A record of its own), which
    /// the start-up probe asks for.
    const std::string& probe_name() const noexcept { return probe_; }
    bool running() { return proc_.running(); }
    /// Stops it (SIGTERM, then SIGKILL); idempotent.
    void stop() noexcept { proc_.stop(); }

private:
    process proc_;
    unsigned short port_ = 0;
    std::string log_;
    std::string probe_;
};

/// The dnsmasq command line for `opts` on `port` (without the program).
std::vector<std::string> dnsmasq_args(const dnsmasq_options& opts, unsigned short port);

/// True when something on 127.0.0.1:`port` answers a UDP DNS query (any
/// reply with our id) within `timeout`; false early if `p` has exited.
/// With `name`, the query is for that name's A record, and only an answer
/// with a record counts: a server that does not hold the name (another
/// test's dnsmasq that took the port) says REFUSED or NXDOMAIN.
bool dns_answers(unsigned short port, std::chrono::milliseconds timeout, process* p = nullptr,
                 const std::string& name = {});

/// A port that is free for both UDP and TCP on 127.0.0.1 right now.
unsigned short free_udp_tcp_port();

} // namespace xmpp::testbed
