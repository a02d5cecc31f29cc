#include "dnsmasq.hpp"

#include <chrono>
#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace xmpp::testbed {

namespace {

constexpr const char* dnsmasq_program = "/usr/sbin/dnsmasq";
constexpr const char* setpriv_program = "/usr/bin/setpriv"; // util-linux

sockaddr_in loopback(unsigned short port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    return a;
}

bool udp_port_free(unsigned short port) {
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) return false;
    auto a = loopback(port);
    bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

// A standard query (RD set) for `name` type A, class IN (RFC 1035 4.1).
std::string make_query(std::uint16_t id, const std::string& name) {
    std::string q;
    q += static_cast<char>(id >> 8);
    q += static_cast<char>(id & 0xff);
    q += std::string("\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", 10);
    std::istringstream labels(name);
    for (std::string l; std::getline(labels, l, '.');) {
        if (l.empty()) continue;
        q += static_cast<char>(l.size());
        q += l;
    }
    q += std::string("\x00\x00\x01\x00\x01", 5);
    return q;
}

std::string tail_of(const std::string& file, std::size_t max = 2000) {
    std::ifstream in(file);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return s.size() > max ? s.substr(s.size() - max) : s;
}

} // namespace

unsigned short free_udp_tcp_port() {
    for (int i = 0; i < 50; ++i) {
        unsigned short p = free_tcp_port();
        if (udp_port_free(p)) return p;
    }
    throw std::runtime_error("free_udp_tcp_port: no port free for both UDP and TCP");
}

bool dns_answers(unsigned short port, std::chrono::milliseconds timeout, process* p, const std::string& name) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) return false;
    auto a = loopback(port);
    // Connected, so that "nobody bound yet" comes back as ECONNREFUSED at
    // once instead of a silent drop.
    ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    std::mt19937 rng{std::random_device{}()};
    bool ok = false;
    while (!ok && std::chrono::steady_clock::now() < deadline) {
        if (p && !p->running()) break;
        auto id = static_cast<std::uint16_t>(rng());
        auto q = make_query(id, name.empty() ? std::string("testbed-probe.invalid") : name);
        ::send(fd, q.data(), q.size(), 0);
        pollfd pfd{fd, POLLIN, 0};
        if (::poll(&pfd, 1, 100) > 0) {
            unsigned char buf[512];
            // Also consumes a pending ECONNREFUSED (POLLERR: nobody bound yet).
            auto n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            ok = n >= 12 && ((buf[0] << 8) | buf[1]) == id;
            // RFC 1035 4.1.1: RCODE in the low bits of byte 3, ANCOUNT in bytes 6-7.
            if (ok && !name.empty()) ok = (buf[3] & 0x0f) == 0 && ((buf[6] << 8) | buf[7]) > 0;
            if (!ok) ::usleep(10'000);
        }
    }
    ::close(fd);
    return ok;
}

std::vector<std::string> dnsmasq_args(const dnsmasq_options& opts, unsigned short port) {
    std::vector<std::string> args = {
        "--no-daemon",        // foreground, no pid file, keeps our uid (root is fine)
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--listen-address=127.0.0.1",
        "--port=" + std::to_string(port),
        "--pid-file=",
        "--log-facility=-",   // stderr, i.e. our log file, not syslog
        "--cache-size=0",
    };
    for (auto& z : opts.zones) args.push_back("--local=/" + z + "/");
    for (auto& s : opts.srv) {
        // dnsmasq order: name,target,port,priority,weight
        args.push_back("--srv-host=" + s.name + "," + s.target + "," + std::to_string(s.port) + "," +
                       std::to_string(s.priority) + "," + std::to_string(s.weight));
    }
    for (auto& h : opts.hosts) {
        std::string a = "--host-record=" + h.name;
        if (!h.ipv4.empty()) a += "," + h.ipv4;
        if (!h.ipv6.empty()) a += "," + h.ipv6;
        args.push_back(a);
    }
    for (auto& e : opts.extra_args) args.push_back(e);
    return args;
}

dnsmasq::dnsmasq(dnsmasq_options opts) {
    std::string last_log;
    for (int attempt = 0; attempt < 5; ++attempt) {
        port_ = free_udp_tcp_port();
        log_ = opts.log_file.empty() ? "/tmp/xmpp-testbed-dnsmasq-" + std::to_string(port_) + ".log"
                                     : opts.log_file;
        std::vector<std::string> argv;
        // If the test process dies without its destructors (a crash),
        // dnsmasq gets SIGTERM instead of living on.
        if (::access(setpriv_program, X_OK) == 0) argv = {setpriv_program, "--pdeathsig=TERM"};
        argv.push_back(dnsmasq_program);
        for (auto& a : dnsmasq_args(opts, port_)) argv.push_back(a);
        // Tests run in parallel, each with its own dnsmasq: when another one
        // takes the port first, ours exits, but the other answers a plain
        // probe, and the test then queried the wrong zones (a rare
        // "Could not contact DNS servers" in CI). The probe asks for a name
        // only this instance holds.
        probe_ = "probe-" + std::to_string(std::random_device{}()) + "-" + std::to_string(::getpid()) + ".testbed.invalid";
        argv.push_back("--host-record=" + probe_ + ",127.0.0.1");
        proc_ = process(argv, log_);
        if (dns_answers(port_, opts.start_timeout, &proc_, probe_)) return;
        const bool exited = !proc_.running();
        proc_.stop();
        last_log = tail_of(log_);
        if (!exited) break; // running but silent: another try will not help
    }
    throw std::runtime_error("dnsmasq did not answer on 127.0.0.1:" + std::to_string(port_) +
                             "; log " + log_ + ":\n" + last_log);
}

std::string dnsmasq::servers() const {
    return "127.0.0.1:" + std::to_string(port_);
}

} // namespace xmpp::testbed
