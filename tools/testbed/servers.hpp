// Throwaway XMPP servers on loopback for the integration tests, the benchmarks
// and the demo: Prosody 0.12 and ejabberd 23.01, each in its own temporary
// directory with its own free ports, its own test PKI and its own logs.
//
// Config templates live in test/servers/ (prosody.cfg.lua.in, ejabberd.yml.in,
// ejabberdctl.cfg.in); see there for what each server loads and why.
#pragma once
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>
#include <sys/types.h>

namespace xmpp::testbed {

/// An account created on the server before start().
struct account {
    std::string user;
    std::string password;
};

/// Settings of a throwaway Prosody.
struct prosody_options {
    std::string domain = "localhost";
    /// false: no certificate at all, so no STARTTLS offered and no direct TLS
    /// listener (the "server offering no TLS" case); require_encryption and
    /// direct_tls are then ignored.
    bool tls = true;
    /// c2s_require_encryption: no SASL mechanisms before STARTTLS.
    bool require_encryption = true;
    /// Also a c2s_direct_tls_ports listener (XEP-0368).
    bool direct_tls = true;
    /// Name in the server certificate; empty = domain. "evil.example" gives
    /// the wrong-name case (the certificate still chains to ca_file()).
    std::string cert_name;
    /// "internal_plain" offers PLAIN, SCRAM-SHA-1 and SCRAM-SHA-256;
    /// "internal_hashed" only SCRAM-SHA-1 (and PLAIN).
    std::string authentication = "internal_plain";
    std::vector<account> accounts = {{"alice", "alice-pass"}, {"bob", "bob-pass"}};
    /// allow_unencrypted_plain_auth: PLAIN also on an unencrypted stream.
    bool allow_unencrypted_plain = false;
    /// RFC 7395 WebSocket at /xmpp-websocket: ws:// on websocket_port() and,
    /// with tls, wss:// on websocket_tls_port(). consider_websocket_secure is
    /// on, so SASL works over ws:// on loopback.
    bool websocket = false;
    /// Expected concurrent client connections (the idle-sessions bench opens
    /// 1000+): raises this process's soft open-files limit (which the server
    /// inherits) towards the hard limit. No rate limits are loaded anyway.
    std::size_t max_clients_hint = 0;
    /// Log at debug level instead of info.
    bool debug_log = false;
    /// Modules loaded in addition to the default set (see the template).
    std::vector<std::string> extra_modules;
    /// Lua appended to the global section of the config (before VirtualHost);
    /// must not repeat a key the template sets.
    std::string extra_config;
    /// Directory of the templates; empty = $XMPP_TESTBED_CONFIG_DIR, else the
    /// source tree's test/servers (fixed at build time).
    std::filesystem::path config_dir;
    /// Deadline for the ports to open (Prosody hangs rather than exits on a
    /// failed start).
    std::chrono::milliseconds start_timeout = std::chrono::seconds(15);
};

/// Settings of a throwaway ejabberd.
struct ejabberd_options {
    std::string domain = "localhost";
    /// false: no certificate, no STARTTLS, no direct TLS listener.
    bool tls = true;
    /// starttls_required on the c2s listener.
    bool require_encryption = true;
    /// Also a `tls: true` c2s listener (XEP-0368).
    bool direct_tls = true;
    /// Name in the server certificate; empty = domain.
    std::string cert_name;
    /// Stored in plain (auth_password_format: plain), so the server offers
    /// SCRAM-SHA-1/256/512, their -PLUS variants, PLAIN and DIGEST-MD5.
    std::vector<account> accounts = {{"alice", "alice-pass"}, {"bob", "bob-pass"}};
    /// disable_sasl_mechanisms. X-OAUTH2 is offered by default even though no
    /// token can work here.
    std::vector<std::string> disabled_mechanisms = {"X-OAUTH2"};
    /// RFC 7395 WebSocket at /xmpp-websocket (ejabberd_http_ws): ws:// on
    /// websocket_port() and, with tls, wss:// on websocket_tls_port().
    bool websocket = false;
    /// As in prosody_options; the ejabberd VM also gets its soft open-files
    /// limit raised to the hard limit (su's pam_limits lowers it to 1024).
    std::size_t max_clients_hint = 0;
    bool debug_log = false;
    /// YAML lines added under `modules:`, indented by two spaces,
    /// e.g. "  mod_muc: {}\n".
    std::string extra_modules;
    /// Top-level YAML appended to ejabberd.yml; must not repeat a key the
    /// template sets.
    std::string extra_config;
    std::filesystem::path config_dir;
    /// Deadline for the VM to open its ports (~1 s here, more on a busy CI).
    std::chrono::milliseconds start_timeout = std::chrono::seconds(30);
};

/// What both servers have in common. Not thread safe: one thread drives an
/// instance; distinct instances are independent and may run at once. A
/// moved-from server may only be destroyed, assigned to or stop()ped.
class server {
public:
    server(server&&) noexcept;
    server& operator=(server&&) noexcept;
    /// Stops the server (see stop()) and removes its directory.
    virtual ~server();

    /// Plain c2s port on 127.0.0.1 (STARTTLS offered there when tls).
    unsigned short c2s_port() const noexcept;
    /// Direct TLS c2s port (XEP-0368); 0 when there is none.
    unsigned short direct_tls_port() const noexcept;
    /// ws:// port (path /xmpp-websocket); 0 when websocket is off.
    unsigned short websocket_port() const noexcept;
    /// wss:// port (path /xmpp-websocket); 0 when websocket or tls is off.
    unsigned short websocket_tls_port() const noexcept;
    /// Trust anchor for clients (PEM); empty path when tls is off.
    std::filesystem::path ca_file() const;
    const std::string& domain() const noexcept;
    /// The accounts created so far (options plus add_account()).
    const std::vector<account>& accounts() const noexcept;
    /// OS pid of the server itself (Lua for Prosody, the Erlang VM for
    /// ejabberd); -1 when stopped.
    pid_t pid() const noexcept;
    /// The server's temporary directory (config, data, logs).
    const std::filesystem::path& dir() const noexcept;
    /// Wall time of the last start, from spawn until every port accepted
    /// connections and the accounts existed.
    std::chrono::milliseconds startup_time() const noexcept;
    /// The last `max_bytes` of each log file, labelled, for failure messages.
    std::string log(std::size_t max_bytes = 8192) const;

    /// Creates an account (works while running). Throws std::runtime_error
    /// with the tool's output when that fails.
    void add_account(const account& a);
    /// Stops the server by pid and waits until it is gone (SIGKILL after a
    /// grace time). Keeps the directory. Idempotent; never throws.
    void stop() noexcept;
    /// stop(), then start again in the same directory on the same ports, with
    /// the same accounts and data. Throws std::runtime_error (with the log
    /// tail) when the start fails, e.g. a port was taken meanwhile.
    void restart();

    /// The implementation (servers.cpp); public only so that the per-server
    /// implementations there can derive from it.
    struct impl;

protected:
    explicit server(std::unique_ptr<impl> p);
    std::unique_ptr<impl> impl_;
};

/// A throwaway Prosody: `prosody --config FILE -F` as a child process.
class prosody_server : public server {
public:
    /// Writes the config into a new temporary directory, makes a test PKI
    /// with a certificate for cert_name, creates the accounts
    /// (prosodyctl register), starts Prosody and waits until its ports accept
    /// connections. Throws std::runtime_error with the log tail when any step
    /// fails or the deadline passes; then nothing is left running.
    explicit prosody_server(prosody_options opts = {});
};

/// A throwaway ejabberd: `ejabberdctl ... foreground` as a child process,
/// with its own node name and Erlang distribution port (no epmd involved).
class ejabberd_server : public server {
public:
    /// As prosody_server; accounts are created with `ejabberdctl register`
    /// once the node runs. As root the VM runs as user ejabberd (ejabberdctl
    /// switches), so the directory is handed to that user; other users than
    /// root and ejabberd cannot run ejabberdctl (throws).
    explicit ejabberd_server(ejabberd_options opts = {});
};

} // namespace xmpp::testbed
