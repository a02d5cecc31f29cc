#include "servers.hpp"

#include "pki.hpp"
#include "process.hpp"

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef XMPP_TESTBED_CONFIG_DIR
#define XMPP_TESTBED_CONFIG_DIR ""
#endif

namespace xmpp::testbed {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

std::string read_file(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    if (!f) throw std::runtime_error("testbed: cannot read " + p.string());
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

void write_file(const fs::path& p, const std::string& text) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f << text;
    if (!f.flush()) throw std::runtime_error("testbed: cannot write " + p.string());
}

/// The last `max` bytes of a file, from a line start; "" when unreadable.
std::string tail_of(const fs::path& p, std::size_t max) {
    std::ifstream f(p, std::ios::binary);
    if (!f) return {};
    f.seekg(0, std::ios::end);
    const auto size = static_cast<std::size_t>(f.tellg());
    const std::size_t from = size > max ? size - max : 0;
    f.seekg(static_cast<std::streamoff>(from));
    std::string s(size - from, '\0');
    f.read(s.data(), static_cast<std::streamsize>(s.size()));
    if (from > 0) {
        auto nl = s.find('\n');
        if (nl != std::string::npos) s.erase(0, nl + 1);
    }
    return s;
}

/// Drops Prosody's "unable to find lua-unbound" banner (printed by every
/// prosody and prosodyctl run here; harmless) so that failure messages show
/// what matters.
std::string without_unbound_banner(std::string text) {
    const std::string stars = "**************************\n";
    for (std::size_t from = 0;;) {
        const auto open = text.find(stars, from);
        if (open == std::string::npos) break;
        const auto close = text.find(stars, open + stars.size());
        if (close == std::string::npos) break;
        if (text.substr(open, close - open).find("lua-unbound") != std::string::npos) {
            auto end = close + stars.size();
            while (end < text.size() && text[end] == '\n') ++end;
            text.erase(open, end - open);
            from = open;
        } else {
            from = close + stars.size();
        }
    }
    return text;
}

fs::path template_dir(const fs::path& given) {
    if (!given.empty()) return given;
    if (const char* e = std::getenv("XMPP_TESTBED_CONFIG_DIR"); e && *e) return e;
    return XMPP_TESTBED_CONFIG_DIR;
}

bool is_field_char(char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; }

/// Replaces every @NAME@ of `file` by vars[NAME], in one pass (values are not
/// scanned again). A field without a value is an error: template and code
/// disagree.
std::string fill_template(const fs::path& file, const std::map<std::string, std::string>& vars) {
    const std::string text = read_file(file);
    std::string out;
    out.reserve(text.size() + 512);
    std::size_t i = 0;
    while (i < text.size()) {
        if (text[i] == '@') {
            std::size_t j = i + 1;
            while (j < text.size() && is_field_char(text[j])) ++j;
            if (j > i + 1 && j < text.size() && text[j] == '@') {
                const std::string name = text.substr(i + 1, j - i - 1);
                auto it = vars.find(name);
                if (it == vars.end())
                    throw std::runtime_error("testbed: " + file.string() + ": no value for @" + name + "@");
                out += it->second;
                i = j + 1;
                continue;
            }
        }
        out += text[i++];
    }
    return out;
}

std::string escaped(const std::string& s, const char* quote) {
    std::string out = quote;
    for (char c : s) {
        switch (c) {
        case '\\': out += "\\\\"; break;
        case '"': out += "\\\""; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default: out += c;
        }
    }
    return out + quote;
}
// Lua 5.4 and YAML double-quoted strings share these escapes.
std::string lua_str(const std::string& s) { return escaped(s, "\""); }
std::string yaml_str(const std::string& s) { return escaped(s, "\""); }
std::string shell_str(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

/// `n` distinct free loopback ports.
std::vector<unsigned short> free_ports(std::size_t n) {
    std::set<unsigned short> got;
    for (int tries = 0; got.size() < n && tries < 100; ++tries) got.insert(free_tcp_port());
    if (got.size() < n) throw std::runtime_error("testbed: not enough free ports");
    return {got.begin(), got.end()};
}

/// Something accepts TCP connections on 127.0.0.1:port now. The connect is
/// bounded: a listener with a full backlog would make it hang for minutes.
bool accepts(unsigned short port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    if (!ok && errno == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        int err = 0;
        socklen_t len = sizeof err;
        ok = ::poll(&p, 1, 250) == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
    }
    ::close(fd);
    return ok;
}

/// The process exists and is not a zombie.
bool pid_alive(pid_t pid) {
    if (pid <= 0) return false;
    if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    if (!std::getline(f, stat)) return false;
    auto p = stat.rfind(')');
    return p == std::string::npos || p + 2 >= stat.size() || stat[p + 2] != 'Z';
}

/// The idle-sessions bench holds `clients` sockets in its own process and the
/// server as many in its own: the soft limit of this process (inherited by
/// the server) must cover that.
void raise_open_files(std::size_t clients) {
    if (clients == 0) return;
    rlimit r{};
    if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return;
    const rlim_t want = static_cast<rlim_t>(clients) + 256;
    if (r.rlim_cur != RLIM_INFINITY && r.rlim_cur < want) {
        r.rlim_cur = (r.rlim_max == RLIM_INFINITY || r.rlim_max > want) ? want : r.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &r);
    }
}

std::string proc_text(pid_t pid, const char* what) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/" + what, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

/// Live processes named `comm` whose command line contains `needle`.
std::vector<pid_t> find_processes(const std::string& comm, const std::string& needle) {
    std::vector<pid_t> found;
    std::error_code ec;
    for (auto& e : fs::directory_iterator("/proc", ec)) {
        const std::string name = e.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        const pid_t pid = static_cast<pid_t>(std::stol(name));
        if (proc_text(pid, "comm") == comm + "\n" && proc_text(pid, "cmdline").find(needle) != std::string::npos &&
            pid_alive(pid))
            found.push_back(pid);
    }
    return found;
}

std::atomic<unsigned> instance_counter{0};

/// Thrown by launch() when the server could not bind a port: the caller
/// picks new ports and tries again.
struct port_in_use : std::runtime_error {
    using std::runtime_error::runtime_error;
};

} // namespace

// ---------------------------------------------------------------------------

struct server::impl {
    virtual ~impl() = default;

    /// Spawns the server and waits until it serves. Throws port_in_use or
    /// std::runtime_error (with the log tail); nothing runs after a throw.
    virtual void launch() = 0;
    /// Stops by pid and waits; never throws.
    virtual void halt() noexcept = 0;
    virtual void create_account(const account& a) = 0;

    std::string log_tail(std::size_t max) const {
        std::string out;
        for (auto& [label, path] : logs) {
            std::string t = without_unbound_banner(tail_of(path, max));
            if (t.find_first_not_of(" \n") == std::string::npos) continue;
            out += "---- " + label + " (" + path.string() + ") ----\n" + t;
            if (out.back() != '\n') out += '\n';
        }
        return out;
    }

    std::vector<unsigned short> ports() const {
        std::vector<unsigned short> v;
        for (auto p : {c2s, direct_tls, ws, wss})
            if (p) v.push_back(p);
        return v;
    }

    enum class wait_result { ready, exited, port_taken, timeout };

    /// Polls until every port accepts connections, the child exits, a log
    /// shows a port-in-use marker (the server may hang then), or `deadline`.
    wait_result wait_ready(clock_type::time_point deadline, const fs::path& log,
                           const std::vector<std::string>& port_markers) {
        for (;;) {
            if (!proc.running()) return wait_result::exited;
            // The log first: when a port is taken, whoever holds it accepts.
            const std::string t = tail_of(log, 64 * 1024);
            for (auto& m : port_markers)
                if (t.find(m) != std::string::npos) return wait_result::port_taken;
            bool all = true;
            for (auto p : ports())
                if (!accepts(p)) { all = false; break; }
            if (all) return wait_result::ready;
            if (clock_type::now() >= deadline) return wait_result::timeout;
            std::this_thread::sleep_for(25ms);
        }
    }

    /// Stops what runs and throws `what` with the log tail.
    [[noreturn]] void fail(const std::string& what, bool port_taken = false) {
        halt();
        std::string msg = what + "\n" + log_tail(4096);
        if (port_taken) throw port_in_use(msg);
        throw std::runtime_error(msg);
    }

    void after_wait(wait_result r, const char* name) {
        switch (r) {
        case wait_result::ready: return;
        case wait_result::exited: fail(std::string(name) + " exited during start");
        case wait_result::port_taken: fail(std::string(name) + " could not bind a port", true);
        case wait_result::timeout:
            fail(std::string(name) + " did not open its ports within " +
                 std::to_string(start_timeout.count()) + " ms");
        }
    }

    std::string domain;
    std::vector<account> accounts;
    std::unique_ptr<temp_dir> dir; // declared before proc: removed after it stops
    fs::path ca;
    unsigned short c2s = 0, direct_tls = 0, ws = 0, wss = 0;
    process proc;
    pid_t server_pid = -1;
    std::chrono::milliseconds startup{0};
    std::chrono::milliseconds start_timeout{15000};
    std::vector<std::pair<std::string, fs::path>> logs; // label, file
};

// ---------------------------------------------------------------------------
// Prosody

namespace {

struct prosody_impl final : server::impl {
    explicit prosody_impl(prosody_options o) : opts(std::move(o)) {
        if (!opts.tls) opts.direct_tls = opts.require_encryption = false;
        domain = opts.domain;
        start_timeout = opts.start_timeout;
        raise_open_files(opts.max_clients_hint);
        dir = std::make_unique<temp_dir>("xmpp-prosody");
        const fs::path d = dir->path();
        fs::create_directories(d / "data");
        fs::create_directories(d / "certs");
        cfg = d / "prosody.cfg.lua";
        logs = {{"prosody log", d / "prosody.log"},
                {"prosody console", d / "console.log"},
                {"prosodyctl", d / "prosodyctl.log"}};
        if (opts.tls) {
            pki p(d / "pki");
            leaf = p.issue(opts.cert_name.empty() ? opts.domain : opts.cert_name);
            ca = p.ca_cert();
        }
        // prosodyctl writes the account files; no server needs to run.
        choose_ports();
        write_config();
        for (auto& a : opts.accounts) add(a);
        for (int attempt = 0;; ++attempt) {
            try {
                launch();
                return;
            } catch (const port_in_use&) {
                if (attempt == 2) throw;
            }
            choose_ports();
            write_config();
        }
    }
    ~prosody_impl() override { halt(); }

    void add(const account& a) {
        create_account(a);
        accounts.push_back(a);
    }

    void choose_ports() {
        auto p = free_ports(4);
        c2s = p[0];
        direct_tls = opts.direct_tls ? p[1] : 0;
        ws = opts.websocket ? p[2] : 0;
        wss = opts.websocket && opts.tls ? p[3] : 0;
    }

    static std::string port_list(unsigned short p) { return p ? std::to_string(p) : std::string(); }

    void write_config() {
        const fs::path d = dir->path();
        std::string modules;
        if (opts.websocket) modules += "\"websocket\"; ";
        for (auto& m : opts.extra_modules) modules += lua_str(m) + "; ";
        std::string ssl = "-- no certificate: no STARTTLS, no direct TLS";
        if (opts.tls)
            ssl = "ssl = { certificate = " + lua_str(leaf.cert.string()) + "; key = " +
                  lua_str(leaf.key.string()) + " }";
        const std::map<std::string, std::string> vars{
            {"RUN_AS_ROOT", ::geteuid() == 0 ? "true" : "false"},
            {"PIDFILE", lua_str((d / "prosody.pid").string())},
            {"DATA_PATH", lua_str((d / "data").string())},
            {"CERT_DIR", lua_str((d / "certs").string())},
            {"LOG_LEVEL", opts.debug_log ? "debug" : "info"},
            {"LOG_FILE", lua_str((d / "prosody.log").string())},
            {"C2S_PORT", std::to_string(c2s)},
            {"DIRECT_TLS_PORTS", port_list(direct_tls)},
            {"HTTP_PORTS", port_list(ws)},
            {"HTTPS_PORTS", port_list(wss)},
            {"EXTRA_MODULES", modules},
            // Without a certificate mod_tls would still offer STARTTLS (and
            // then fail the handshake).
            {"DISABLED_MODULES", opts.tls ? "" : "\"tls\";"},
            {"AUTHENTICATION", lua_str(opts.authentication)},
            {"REQUIRE_ENCRYPTION", opts.require_encryption ? "true" : "false"},
            {"ALLOW_UNENCRYPTED_PLAIN", opts.allow_unencrypted_plain ? "true" : "false"},
            {"SSL", ssl},
            {"EXTRA_CONFIG", opts.extra_config},
            {"DOMAIN", lua_str(opts.domain)},
        };
        write_file(cfg, fill_template(template_dir(opts.config_dir) / "prosody.cfg.lua.in", vars));
    }

    void launch() override {
        const auto t0 = clock_type::now();
        // Fresh log per start, so that old port-in-use lines do not count.
        std::error_code ec;
        fs::remove(dir->path() / "prosody.log", ec);
        proc = process({"prosody", "--config", cfg.string(), "-F"}, (dir->path() / "console.log").string());
        server_pid = proc.pid();
        // portmanager: "Failed to open server port <n> on <ip>, check that
        // Prosody or another XMPP server is not already running ..."
        after_wait(wait_ready(t0 + start_timeout, dir->path() / "prosody.log",
                              {"Failed to open server port"}),
                   "prosody");
        startup = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0);
    }

    void halt() noexcept override {
        // SIGTERM: Prosody sends <system-shutdown/> and closes (shutdown_deadline 0.2 s).
        proc.stop(5000ms);
        server_pid = -1;
    }

    void create_account(const account& a) override {
        const fs::path log = dir->path() / "prosodyctl.log";
        int rc = run_command({"prosodyctl", "--config", cfg.string(), "register", a.user, domain, a.password},
                             log.string(), {}, 60s);
        if (rc != 0)
            throw std::runtime_error("testbed: prosodyctl register " + a.user + "@" + domain + " failed (exit " +
                                     std::to_string(rc) + ")\n" + tail_of(log, 2048));
    }

    prosody_options opts;
    fs::path cfg;
    pki::leaf leaf;
};

// ---------------------------------------------------------------------------
// ejabberd

struct ejabberd_impl final : server::impl {
    explicit ejabberd_impl(ejabberd_options o) : opts(std::move(o)) {
        if (!opts.tls) opts.direct_tls = opts.require_encryption = false;
        domain = opts.domain;
        start_timeout = opts.start_timeout;
        // ejabberdctl runs as root (then switches to user ejabberd) or as
        // ejabberd; it refuses anybody else (exit 7).
        const passwd* pw = ::getpwnam("ejabberd");
        if (!pw) throw std::runtime_error("testbed: no user 'ejabberd' (is the ejabberd package installed?)");
        if (::geteuid() != 0 && ::geteuid() != pw->pw_uid)
            throw std::runtime_error("testbed: ejabberdctl runs only as root or as user ejabberd");
        raise_open_files(opts.max_clients_hint);

        node = "xmpptest" + std::to_string(::getpid()) + "n" + std::to_string(++instance_counter) + "@localhost";
        dir = std::make_unique<temp_dir>("xmpp-ejabberd");
        const fs::path d = dir->path();
        fs::create_directories(d / "spool");
        fs::create_directories(d / "logs");
        logs = {{"ejabberd console", d / "console.log"},
                {"ejabberd error.log", d / "logs" / "error.log"},
                {"ejabberdctl", d / "ejabberdctl.log"}};
        if (opts.tls) {
            pki p(d / "pki");
            auto leaf = p.issue(opts.cert_name.empty() ? opts.domain : opts.cert_name);
            // ejabberd wants key and certificate in one PEM file.
            write_file(d / "server.pem", read_file(leaf.key) + read_file(leaf.cert));
            ca = p.ca_cert();
        }
        const fs::path tdir = template_dir(opts.config_dir);
        fs::copy_file(tdir / "ejabberd-erl.sh", d / "erl", fs::copy_options::overwrite_existing);
        fs::permissions(d / "erl", fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                       fs::perms::others_read | fs::perms::others_exec);
        // Erlang's resolver config: "localhost" is 127.0.0.1 (the node name).
        std::error_code ec;
        if (!fs::copy_file("/etc/ejabberd/inetrc", d / "inetrc", ec))
            write_file(d / "inetrc", "{lookup,[\"file\",\"native\"]}.\n{host,{127,0,0,1}, [\"localhost\"]}.\n");

        for (int attempt = 0;; ++attempt) {
            choose_ports();
            write_config();
            give_to_ejabberd(pw);
            try {
                launch();
                break;
            } catch (const port_in_use&) {
                if (attempt == 2) throw;
            }
        }
        // Accounts need the running node (mnesia); they persist in the spool.
        try {
            const auto t0 = clock_type::now();
            for (auto& a : opts.accounts) {
                create_account(a);
                accounts.push_back(a);
            }
            startup += std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0);
        } catch (const std::exception& e) {
            fail(e.what());
        }
    }
    ~ejabberd_impl() override { halt(); }

    void choose_ports() {
        auto p = free_ports(5);
        dist = p[0];
        c2s = p[1];
        direct_tls = opts.direct_tls ? p[2] : 0;
        ws = opts.websocket ? p[3] : 0;
        wss = opts.websocket && opts.tls ? p[4] : 0;
    }

    /// As root, ejabberdctl runs the VM as user ejabberd, which must own its
    /// directory (mkdtemp made it 0700 root).
    void give_to_ejabberd(const passwd* pw) {
        if (::geteuid() != 0) return;
        const fs::path d = dir->path();
        auto give = [&](const fs::path& p) {
            if (::lchown(p.c_str(), pw->pw_uid, pw->pw_gid) != 0)
                throw std::runtime_error("testbed: chown " + p.string() + " failed");
        };
        give(d);
        for (auto& e : fs::recursive_directory_iterator(d)) give(e.path());
    }

    std::string listener(unsigned short port, const std::string& module, const std::string& extra) const {
        return "  -\n    port: " + std::to_string(port) + "\n    ip: \"127.0.0.1\"\n    module: " + module +
               "\n    backlog: 1024\n" + extra;
    }

    void write_config() {
        const fs::path d = dir->path();
        const std::string c2s_common = "    max_stanza_size: 262144\n    shaper: none\n    access: c2s\n";
        std::string listeners = listener(c2s, "ejabberd_c2s",
                                         c2s_common + "    starttls: " + (opts.tls ? "true" : "false") +
                                             "\n    starttls_required: " +
                                             (opts.require_encryption ? "true" : "false") + "\n");
        if (direct_tls) listeners += listener(direct_tls, "ejabberd_c2s", c2s_common + "    tls: true\n");
        const std::string ws_handler = "    request_handlers:\n      /xmpp-websocket: ejabberd_http_ws\n";
        if (ws) listeners += listener(ws, "ejabberd_http", ws_handler);
        if (wss) listeners += listener(wss, "ejabberd_http", ws_handler + "    tls: true\n");
        if (!listeners.empty() && listeners.back() == '\n') listeners.pop_back();

        std::string certfiles = "# no certificate: no STARTTLS, no direct TLS";
        if (opts.tls)
            certfiles = "certfiles:\n  - " + yaml_str((d / "server.pem").string()) + "\n  - " + yaml_str(ca.string());
        std::string mechs;
        for (auto& m : opts.disabled_mechanisms) mechs += (mechs.empty() ? "" : ", ") + yaml_str(m);

        std::map<std::string, std::string> vars{
            {"LOGLEVEL", opts.debug_log ? "debug" : "info"},
            {"DOMAIN", yaml_str(opts.domain)},
            {"CERTFILES", certfiles},
            {"DISABLED_MECHANISMS", mechs},
            {"LISTENERS", listeners},
            {"EXTRA_MODULES", opts.extra_modules},
            {"EXTRA_CONFIG", opts.extra_config},
        };
        const fs::path tdir = template_dir(opts.config_dir);
        write_file(d / "ejabberd.yml", fill_template(tdir / "ejabberd.yml.in", vars));

        const std::size_t max_ports = std::max<std::size_t>(32000, 2 * opts.max_clients_hint + 1000);
        std::map<std::string, std::string> ctl_vars{
            {"DIST_PORT", std::to_string(dist)},
            {"MAX_PORTS", std::to_string(max_ports)},
            {"PID_FILE", shell_str((d / "ejabberd.pid").string())},
            {"ERL_WRAPPER", shell_str((d / "erl").string())},
        };
        write_file(d / "ejabberdctl.cfg", fill_template(tdir / "ejabberdctl.cfg.in", ctl_vars));
    }

    std::vector<std::string> ctl(std::vector<std::string> args) const {
        const fs::path d = dir->path();
        std::vector<std::string> v{"ejabberdctl",
                                   "--config-dir", d.string(),
                                   "--ctl-config", (d / "ejabberdctl.cfg").string(),
                                   "--config", (d / "ejabberd.yml").string(),
                                   "--spool", (d / "spool").string(),
                                   "--logs", (d / "logs").string(),
                                   "--node", node};
        v.insert(v.end(), args.begin(), args.end());
        return v;
    }

    void launch() override {
        const auto t0 = clock_type::now();
        const fs::path d = dir->path();
        std::error_code ec;
        fs::remove(d / "ejabberd.pid", ec);
        fs::remove(d / "console.log", ec);
        // foreground: the VM runs under our child (through su as root) and
        // logs to its stdout; the child's process group holds all of it.
        proc = process(ctl({"foreground"}), (d / "console.log").string());
        server_pid = -1;
        const auto r = wait_ready(t0 + start_timeout, d / "console.log", {"eaddrinuse", "address already in use"});
        if (r == wait_result::exited) {
            // A taken distribution port ends the VM at once.
            const std::string t = tail_of(d / "console.log", 64 * 1024);
            if (t.find("eaddrinuse") != std::string::npos || t.find("address already in use") != std::string::npos)
                fail("ejabberd could not bind a port", true);
        }
        after_wait(r, "ejabberd");
        server_pid = find_vm();
        startup = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0);
    }

    /// The Erlang VM's pid: EJABBERD_PID_PATH (written before the listeners
    /// start), else a search; trusted only when its command line names our
    /// node. -1 when there is none.
    pid_t find_vm() const noexcept {
        try {
            const pid_t p = static_cast<pid_t>(std::stol(read_file(dir->path() / "ejabberd.pid")));
            if (pid_alive(p) && proc_text(p, "cmdline").find(node) != std::string::npos) return p;
        } catch (...) {
        }
        try {
            auto v = find_processes("beam.smp", node);
            if (!v.empty()) return v.front();
        } catch (...) {
        }
        return -1;
    }

    void halt() noexcept override {
        if (proc.pid() <= 0) {
            server_pid = -1;
            return;
        }
        // su puts the VM into a session of its own: signals to our child's
        // process group miss it, and su answers a SIGTERM by killing its
        // shell, which would orphan the VM. So the VM is stopped by its pid:
        // Erlang/OTP takes SIGTERM as init:stop(), a clean shutdown (~1 s),
        // after which sh, su and our child end by themselves.
        const pid_t vm = server_pid > 0 ? server_pid : find_vm();
        if (vm > 0) {
            ::kill(vm, SIGTERM);
            const auto deadline = clock_type::now() + 10s;
            while (pid_alive(vm) && clock_type::now() < deadline) std::this_thread::sleep_for(20ms);
            if (pid_alive(vm) && proc_text(vm, "cmdline").find(node) != std::string::npos) {
                ::kill(vm, SIGKILL);
                const auto kill_deadline = clock_type::now() + 3s;
                while (pid_alive(vm) && clock_type::now() < kill_deadline) std::this_thread::sleep_for(20ms);
            }
        }
        // sh, su and ejabberdctl follow the VM; a SIGTERM now would make su
        // linger for 2 s.
        const auto deadline = clock_type::now() + 5s;
        while (proc.running() && clock_type::now() < deadline) std::this_thread::sleep_for(20ms);
        proc.stop(3000ms); // reaps our child; SIGTERM/SIGKILL if it lingers
        server_pid = -1;
    }

    void create_account(const account& a) override {
        const fs::path log = dir->path() / "ejabberdctl.log";
        int rc = run_command(ctl({"register", a.user, domain, a.password}), log.string(), {}, 60s);
        if (rc != 0)
            throw std::runtime_error("testbed: ejabberdctl register " + a.user + "@" + domain + " failed (exit " +
                                     std::to_string(rc) + ")\n" + tail_of(log, 2048));
    }

    ejabberd_options opts;
    std::string node;
    unsigned short dist = 0;
};

} // namespace

// ---------------------------------------------------------------------------

server::server(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
server::server(server&&) noexcept = default;
server& server::operator=(server&&) noexcept = default;
server::~server() = default;

unsigned short server::c2s_port() const noexcept { return impl_->c2s; }
unsigned short server::direct_tls_port() const noexcept { return impl_->direct_tls; }
unsigned short server::websocket_port() const noexcept { return impl_->ws; }
unsigned short server::websocket_tls_port() const noexcept { return impl_->wss; }
std::filesystem::path server::ca_file() const { return impl_->ca; }
const std::string& server::domain() const noexcept { return impl_->domain; }
const std::vector<account>& server::accounts() const noexcept { return impl_->accounts; }
pid_t server::pid() const noexcept { return impl_->server_pid; }
const std::filesystem::path& server::dir() const noexcept { return impl_->dir->path(); }
std::chrono::milliseconds server::startup_time() const noexcept { return impl_->startup; }
std::string server::log(std::size_t max_bytes) const { return impl_->log_tail(max_bytes); }

void server::add_account(const account& a) {
    impl_->create_account(a);
    impl_->accounts.push_back(a);
}

void server::stop() noexcept {
    if (impl_) impl_->halt();
}

void server::restart() {
    if (!impl_) throw std::logic_error("testbed: restart() of a moved-from server");
    impl_->halt();
    impl_->launch();
}

prosody_server::prosody_server(prosody_options opts) : server(std::make_unique<prosody_impl>(std::move(opts))) {}

ejabberd_server::ejabberd_server(ejabberd_options opts) : server(std::make_unique<ejabberd_impl>(std::move(opts))) {}

} // namespace xmpp::testbed
