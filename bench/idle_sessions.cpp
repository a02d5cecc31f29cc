// bench/idle_sessions: memory of idle connections on the client side.
//
// Opens N (argv[1], default 1000) TLS connections over loopback to a server
// in a child process (a fork of this program, using tls::accept), lets each
// finish its handshake and park on a pending read, and reports the slope of
// malloc-in-use (mallinfo2: uordblks + hblkhd) and of RSS (/proc/self/statm)
// over the number of connections: the cost of one more idle connection.
// Constant costs (contexts, the reactor, one-time library state) fall out
// of the slope.
//
// Phases, each on its own io_context (so that no phase inherits another's
// recycled reactor state), measured the same way:
//   idle_tls_transport   xmpp::tls::connect (TLS 1.3, certificate verified)
//                        + a parked wait_read()
//   idle_tcp_transport   xmpp::tls::make_tcp_transport + a parked
//                        wait_read(): the floor under the TLS figure
//   idle_asio_ssl_stream asio::ssl::stream + a parked async_read_some(),
//                        as a reference (the server speaks TLS to it too)
//   idle_tls_session     whole xmpp::session objects against a throwaway
//                        Prosody: STARTTLS (TLS 1.3, verified), SCRAM-SHA-256,
//                        bind (one account, a resource per session), then
//                        idle with the reader parked: what an application
//                        holds per connected account
// To add a phase, derive from `phase` and add a measure() line in main().
//
// Prints BENCH lines; see bench/RESULTS.md.
#include "testbed/pki.hpp"
#include "testbed/servers.hpp"

#include <xmpp/session.hpp>
#include <xmpp/tls.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace asio = boost::asio;
namespace tls = xmpp::tls;
using tcp = asio::ip::tcp;

namespace {

// --- Measuring ----------------------------------------------------------------

double malloc_in_use() {
    const auto mi = mallinfo2();
    return static_cast<double>(mi.uordblks + mi.hblkhd);
}

double rss_bytes() {
    long pages = 0, resident = 0;
    if (std::ifstream f{"/proc/self/statm"}; !(f >> pages >> resident)) return 0;
    return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

// Least-squares slope of y over x.
double slope(const std::vector<double>& x, const std::vector<double>& y) {
    const double n = static_cast<double>(x.size());
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        sx += x[i];
        sy += y[i];
        sxx += x[i] * x[i];
        sxy += x[i] * y[i];
    }
    return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

// --- Phases ---------------------------------------------------------------------

struct setup {
    const xmpp::testbed::pki& pki;
    tcp::endpoint server;
    int n;
};

/// One kind of idle connection.  open_one() connects, handshakes and leaves
/// the connection parked on a pending read, kept alive by the phase;
/// close_all() ends them all (the io_context is run afterwards until the
/// parked operations have finished).
class phase {
public:
    virtual ~phase() = default;
    virtual const char* name() const = 0; // BENCH name prefix
    virtual asio::awaitable<void> open_one(asio::io_context& io, tcp::endpoint server) = 0;
    virtual void close_all() = 0;
};

// A small read buffer: an idle session holds none between reads (the
// transport is reactor style), and the reference gets the same one.
constexpr std::size_t park_buffer = 64;

// xmpp::transport connections: TLS, or plain TCP (the server child then
// waits for a ClientHello that never comes: the client is idle either way).
class transport_phase final : public phase {
public:
    transport_phase(const setup& s, bool secure) : secure_(secure) {
        tls::client_options o;
        o.ca_file = s.pki.ca_cert().string();
        o.use_system_store = false;
        ctx_ = tls::context::make_client(o);
        transports_.reserve(static_cast<std::size_t>(s.n) + 16);
    }
    const char* name() const override { return secure_ ? "idle_tls_transport" : "idle_tcp_transport"; }

    asio::awaitable<void> open_one(asio::io_context& io, tcp::endpoint server) override {
        tcp::socket sock(io);
        co_await sock.async_connect(server, asio::use_awaitable);
        std::unique_ptr<xmpp::transport> t;
        if (secure_)
            t = co_await tls::connect(std::move(sock), ctx_, "localhost");
        else
            t = tls::make_tcp_transport(std::move(sock));
        transports_.push_back(std::move(t));
        asio::co_spawn(io, park(*transports_.back()), asio::detached);
    }

    void close_all() override {
        for (auto& t : transports_) t->close();
    }

private:
    static asio::awaitable<void> park(xmpp::transport& t) {
        try {
            for (;;) {
                co_await t.wait_read();
                char buf[park_buffer];
                boost::system::error_code ec;
                t.read_some(asio::buffer(buf), ec);
                if (ec && ec != asio::error::would_block) co_return;
            }
        } catch (const boost::system::system_error&) {
        }
    }

    bool secure_;
    tls::context ctx_;
    std::vector<std::unique_ptr<xmpp::transport>> transports_;
};


class asio_ssl_phase final : public phase {
public:
    using stream = asio::ssl::stream<tcp::socket>;

    explicit asio_ssl_phase(const setup& s) : ctx_(asio::ssl::context::tls_client) {
        ctx_.set_verify_mode(asio::ssl::verify_peer);
        ctx_.load_verify_file(s.pki.ca_cert().string());
        streams_.reserve(static_cast<std::size_t>(s.n) + 16);
    }
    const char* name() const override { return "idle_asio_ssl_stream"; }

    asio::awaitable<void> open_one(asio::io_context& io, tcp::endpoint server) override {
        auto s = std::make_unique<stream>(io, ctx_);
        co_await s->next_layer().async_connect(server, asio::use_awaitable);
        SSL_set_tlsext_host_name(s->native_handle(), "localhost");
        s->set_verify_callback(asio::ssl::host_name_verification("localhost"));
        co_await s->async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
        streams_.push_back(std::move(s));
        asio::co_spawn(io, park(*streams_.back()), asio::detached);
    }

    void close_all() override {
        for (auto& s : streams_) {
            boost::system::error_code ec;
            s->next_layer().close(ec);
        }
    }

private:
    static asio::awaitable<void> park(stream& s) {
        try {
            char buf[park_buffer];
            for (;;) co_await s.async_read_some(asio::buffer(buf), asio::use_awaitable);
        } catch (const boost::system::system_error&) {
        }
    }

    asio::ssl::context ctx_;
    std::vector<std::unique_ptr<stream>> streams_;
};

// Whole sessions against Prosody: the figure the issue's target is about.
class session_phase final : public phase {
public:
    session_phase(const setup& s, const xmpp::testbed::server& server) : server_(server) {
        sessions_.reserve(static_cast<std::size_t>(s.n) + 16);
    }
    const char* name() const override { return "idle_tls_session"; }

    asio::awaitable<void> open_one(asio::io_context& io, tcp::endpoint) override {
        xmpp::session_options o;
        const auto& acct = server_.accounts().front();
        o.address = xmpp::jid::parse(acct.user + "@" + server_.domain() + "/r" + std::to_string(sessions_.size()));
        o.password = acct.password;
        o.host = "127.0.0.1";
        o.port = server_.c2s_port();
        o.tls.ca_file = server_.ca_file().string();
        o.tls.use_system_store = false;
        o.sasl.mechanisms = {"SCRAM-SHA-256"};
        sessions_.push_back(std::make_unique<xmpp::session>(io.get_executor(), std::move(o)));
        co_await sessions_.back()->async_connect(asio::use_awaitable);
    }

    void close_all() override { sessions_.clear(); }

private:
    const xmpp::testbed::server& server_;
    std::vector<std::unique_ptr<xmpp::session>> sessions_;
};

struct figures {
    std::string name;
    double bytes = 0, rss = 0;
    double total_in_use = 0;
};

// Opens n connections in four batches, sampling after each once every
// handshake of the batch is done; the slope over the samples is the figure.
figures measure(const setup& s, std::unique_ptr<phase> owned) {
    figures f;
    f.name = owned->name();
    {
        asio::io_context io; // per phase: no reactor state carried over
        phase& p = *owned;
        // Hand what earlier phases freed back to the kernel, so that their
        // pages do not hide this phase's growth of RSS.
        ::malloc_trim(0);
        int done = 0, failed = 0;
        auto open = [&](int count) {
            for (int i = 0; i < count; ++i)
                asio::co_spawn(io, p.open_one(io, s.server), [&](std::exception_ptr e) {
                    ++done;
                    if (e) ++failed;
                });
        };
        // Warm-up: one-time state of the libraries and of Asio.
        // run_one() until `target` opens are done (restarting the
        // io_context if it ran out of work in between).
        auto run_until = [&](int target) {
            while (done < target) {
                if (io.stopped()) io.restart();
                io.run_one();
            }
        };
        open(8);
        run_until(8);
        std::vector<double> xs, bytes, rss;
        const int batch = std::max(1, s.n / 4);
        for (int k = 1; k <= 4; ++k) {
            const int target = 8 + k * batch;
            open(batch);
            run_until(target);
            io.restart();
            io.poll(); // let the parked reads start
            xs.push_back(k * batch);
            bytes.push_back(malloc_in_use());
            rss.push_back(rss_bytes());
        }
        if (failed) std::fprintf(stderr, "%s: %d connections failed\n", p.name(), failed);
        f.bytes = slope(xs, bytes);
        f.rss = slope(xs, rss);
        f.total_in_use = bytes.back();
        p.close_all();
        io.restart();
        io.run_for(std::chrono::seconds(5));
        owned.reset(); // its sockets before their io_context
    }
    return f;
}

void report(const figures& f, int n) {
    const char* name = f.name.c_str();
    std::printf("BENCH %s_bytes %.0f B\n", name, f.bytes);
    std::printf("BENCH %s_rss %.0f B\n", name, f.rss);
    std::printf("# %s: %d connections, malloc in use %.1f MB at the end\n", name, n, f.total_in_use / 1e6);
    std::fflush(stdout);
}

// --- The server (child process) ---------------------------------------------------

asio::awaitable<void> serve_one(tcp::socket sock, tls::context ctx) {
    try {
        auto t = co_await tls::accept(std::move(sock), ctx);
        char buf[4096];
        for (;;) {
            boost::system::error_code ec;
            t->read_some(asio::buffer(buf), ec);
            if (ec == asio::error::would_block) {
                co_await t->wait_read();
                continue;
            }
            if (ec) co_return; // the client went away
        }
    } catch (const std::exception&) {
    }
}

asio::awaitable<void> serve(tcp::acceptor& acc, tls::context ctx) {
    for (;;) {
        auto sock = co_await acc.async_accept(asio::use_awaitable);
        asio::co_spawn(acc.get_executor(), serve_one(std::move(sock), ctx), asio::detached);
    }
}

[[noreturn]] void run_server(int listen_fd, const xmpp::testbed::pki::leaf& cert) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    tls::server_options o;
    o.cert_file = cert.cert.string();
    o.key_file = cert.key.string();
    asio::io_context io;
    tcp::acceptor acc(io, tcp::v4(), listen_fd);
    asio::co_spawn(io, serve(acc, tls::context::make_server(o)), asio::detached);
    io.run();
    std::_Exit(0);
}

} // namespace

int main(int argc, char** argv) {
    const int n = argc > 1 ? std::atoi(argv[1]) : 1000;
    if (n < 4) {
        std::fprintf(stderr, "usage: idle_sessions [N >= 4]\n");
        return 2;
    }
    // The client holds n sockets, the server child up to n per phase.
    rlimit rl{};
    ::getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < static_cast<rlim_t>(n) + 64) {
        std::fprintf(stderr, "idle_sessions: open file limit %llu is too low for %d connections\n",
                     static_cast<unsigned long long>(rl.rlim_cur), n);
        return 1;
    }

    xmpp::testbed::temp_dir dir("xmpp-bench-idle");
    xmpp::testbed::pki pki(dir.path());
    const auto cert = pki.issue("localhost");

    // The listening socket is made before the fork and no Asio object
    // exists yet in this process, so the child starts clean.
    const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (lfd < 0 || ::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(lfd, 4096) != 0 ||
        ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        std::perror("idle_sessions: listen");
        return 1;
    }
    std::fflush(nullptr);
    const pid_t child = ::fork();
    if (child < 0) {
        std::perror("idle_sessions: fork");
        return 1;
    }
    if (child == 0) run_server(lfd, cert);
    ::close(lfd);

    const setup s{pki, tcp::endpoint(asio::ip::address_v4::loopback(), ntohs(a.sin_port)), n};
    int rc = 0;
    try {
        report(measure(s, std::make_unique<transport_phase>(s, true)), n);
        report(measure(s, std::make_unique<transport_phase>(s, false)), n);
        report(measure(s, std::make_unique<asio_ssl_phase>(s)), n);
        {
            xmpp::testbed::prosody_options po;
            po.accounts = {{"bench", "bench-pass"}};
            po.max_clients_hint = static_cast<std::size_t>(n) + 64;
            xmpp::testbed::prosody_server prosody(po);
            report(measure(s, std::make_unique<session_phase>(s, prosody)), n);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "idle_sessions: %s\n", e.what());
        rc = 1;
    }
    ::kill(child, SIGTERM);
    ::waitpid(child, nullptr, 0);
    return rc;
}
