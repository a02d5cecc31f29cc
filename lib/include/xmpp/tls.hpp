// TLS for XMPP streams: client and server contexts, direct TLS (XEP-0368)
// and STARTTLS (RFC 6120 5) upgrades, certificate verification (RFC 6125,
// RFC 7590) and channel binding (RFC 5929, RFC 9266), plus the plain TCP
// transport they start from.
//
// The TLS transport is a lean adapter: the TLS library's SSL object works
// directly on the non-blocking socket and is driven reactor style, so an
// idle connection holds no record buffers (see bench/idle_sessions.cpp).
// The backend is BoringSSL (default) or OpenSSL 3, chosen at build time;
// nothing of either leaks into this header.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include <xmpp/transport.hpp>

struct ssl_ctx_st; // SSL_CTX of BoringSSL and OpenSSL

namespace xmpp::tls {

/// Why a TLS operation failed.  Value 0 is reserved for "no error".
///
/// Errors thrown by context::make_client/make_server, connect() and accept()
/// are boost::system::system_error whose what() carries the TLS library's
/// own reason next to the message of the code (e.g. the X.509 verification
/// result "certificate has expired", or the library's error queue).  Errors
/// of the operating system (connection reset, ...) keep their system code;
/// cancellation gives asio::error::operation_aborted.  A transport's
/// read_some() reports stream_truncated, protocol_error or a system error
/// as a bare code (the library's detail is dropped there).
enum class errc {
    handshake_failed = 1,      ///< the handshake failed for another reason (see what())
    certificate_verify_failed, ///< the peer's chain is not trusted (untrusted CA, self-signed, expired...)
    hostname_mismatch,         ///< the certificate does not name the server (RFC 6125 6)
    protocol_version,          ///< no TLS version both sides accept (TLS 1.2 minimum, RFC 7590 3.1)
    alpn_mismatch,             ///< no common ALPN protocol (XEP-0368, RFC 7301 3.2)
    stream_truncated,          ///< the peer closed the TCP connection without a TLS close_notify
    protocol_error,            ///< a TLS protocol error or fatal alert after the handshake
    invalid_configuration,     ///< a context could not be built (unreadable certificate, key or CA...)
};

/// The category of errc; name() is "xmpp.tls".
const boost::system::error_category& category() noexcept;

/// Makes an error_code of tls::category().
inline boost::system::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), category()};
}

/// Settings of a client context.
struct client_options {
    /// Turns off certificate verification (chain and name) entirely.  Only
    /// for tests and explicit user overrides: the peer is then not
    /// authenticated, whatever the stream says.
    bool insecure_skip_verify = false;
    /// Extra trust anchors: a PEM file and/or an OpenSSL hashed directory.
    std::string ca_file, ca_path;
    /// Also trust the system store: the hashed directory $SSL_CERT_DIR,
    /// else the bundle $SSL_CERT_FILE, else /etc/ssl/certs.  A directory is
    /// read lazily (a context costs a few KB); a bundle is parsed into each
    /// context (~1 MB for Debian's), so share contexts between connections.
    bool use_system_store = true;
    /// Lowest accepted version: 0x0303 = TLS 1.2 (RFC 7590 3.1) or 0x0304 =
    /// TLS 1.3.  Anything below TLS 1.2 is refused with
    /// errc::invalid_configuration: TLS 1.0 and 1.1 MUST NOT be negotiated
    /// (RFC 8996).
    int min_version = 0x0303;
    /// Highest version (0x0303 or 0x0304), 0 = the newest the library has
    /// (TLS 1.3).
    int max_version = 0;
    /// ALPN protocols to offer, e.g. {"xmpp-client"} for direct TLS
    /// (XEP-0368); empty for STARTTLS (none offered).
    std::vector<std::string> alpn;
    /// Optional client certificate chain and key (PEM), e.g. for SASL
    /// EXTERNAL (XEP-0178).  Both or neither.
    std::string client_cert_file, client_key_file;

    bool operator==(const client_options&) const = default;
};

/// Settings of a server context.
struct server_options {
    /// Certificate chain (PEM, leaf first) and its private key (PEM).
    std::string cert_file, key_file;
    int min_version = 0x0303; ///< see client_options::min_version
    int max_version = 0;      ///< see client_options::max_version
    /// Protocols the server accepts, in its order of preference.  A client
    /// offering none of them is refused (RFC 7301 3.2); a client offering
    /// no ALPN at all is accepted.
    std::vector<std::string> alpn;
};

namespace detail {
struct context_state;
struct context_access;
} // namespace detail

/// A TLS configuration shared by many connections (an SSL_CTX).  Copies
/// share it.  Thread safe after construction.  Every connection keeps its
/// context alive, so one context per connection costs memory for as long
/// as the connection lives (about 3 KB with BoringSSL, 14 KB with OpenSSL,
/// plus the CAs looked up): make contexts once and reuse them.
class context {
public:
    /// An empty context: connect() and accept() refuse it.
    context() = default;

    /// Builds a client context.  Throws boost::system::system_error with
    /// errc::invalid_configuration (the file and the library's reason in
    /// what()) when a CA, certificate or key cannot be loaded or a version
    /// is not valid.
    static context make_client(const client_options& opts);

    /// A client context for `opts`, shared: while any context made by this
    /// function from equal options is alive, the same one is returned, so
    /// that many connections cost one SSL_CTX (xmpp::session uses it).
    /// Throws as make_client().  Thread safe.  Do not change the returned
    /// context's native_handle(): other connections use it too.  The
    /// system store is read when the context is first built (a later change
    /// of $SSL_CERT_DIR is seen once every such context has gone).
    static context shared_client(const client_options& opts);

    /// Builds a server context; throws as make_client(), also when the
    /// certificate or the key is missing or they do not match.
    static context make_server(const server_options& opts);

    /// True for a context of make_server().
    bool is_server() const noexcept;

    /// The SSL_CTX, for settings this API does not cover.  Change it only
    /// before the first connection uses the context.
    ssl_ctx_st* native_handle() const noexcept;

private:
    friend struct detail::context_access;
    explicit context(std::shared_ptr<const detail::context_state> s) noexcept : state_(std::move(s)) {}
    std::shared_ptr<const detail::context_state> state_;
};

/// Wraps a connected TCP socket as a plain (not secure) transport.  The
/// socket is switched to non-blocking mode.
std::unique_ptr<transport> make_tcp_transport(asio::ip::tcp::socket sock);

/// TLS client handshake over a connected socket.  Sends SNI with
/// `server_name` (not for an IP address) and, unless the context skips
/// verification, requires a certificate chain to a trusted CA that names
/// `server_name`: the JID's domainpart as A-labels, never the SRV target
/// (RFC 7590 3.2, RFC 6125 6).  Accepted names (RFC 6120 13.7.2.1): a
/// DNS-ID (a wildcard only as the whole left-most label, RFC 6125 6.4.3),
/// an SRV-ID "_xmpp-client.<domain>" (RFC 4985), an XmppAddr equal to the
/// domain (RFC 6120 13.7.1.4), and the subject CN only when the certificate
/// has none of DNS-ID, SRV-ID, URI-ID and XmppAddr (RFC 6125 6.4.4).  A
/// mismatch (errc::hostname_mismatch) fails the handshake before any
/// application data is sent.  An IP literal, bracketed or not, is matched
/// against the certificate's IP addresses.  With ALPN configured the
/// server must select one of the offered protocols or none (XEP-0368).
///
/// Throws boost::system::system_error (see errc) on failure, after closing
/// the socket; std::invalid_argument for a server context, or an empty
/// `server_name` with verification on.  Cancellation of the awaiting
/// coroutine aborts the handshake (operation_aborted).  Runs on the
/// socket's executor; `ctx` may be used by other threads at the same time.
asio::awaitable<std::unique_ptr<transport>> connect(asio::ip::tcp::socket sock, const context& ctx,
                                                    std::string server_name);

/// TLS server handshake over a connected socket; throws as connect().
/// std::invalid_argument for a client context.
asio::awaitable<std::unique_ptr<transport>> accept(asio::ip::tcp::socket sock, const context& ctx);

/// STARTTLS (RFC 6120 5.4.3.3): takes the socket out of `plain`, which must
/// be a transport of make_tcp_transport() (else std::invalid_argument), and
/// runs connect() on it.  `plain` is consumed either way.  Nothing may be
/// left unread in the plain stream: TLS starts at the next byte.
asio::awaitable<std::unique_ptr<transport>> connect(std::unique_ptr<transport> plain, const context& ctx,
                                                    std::string server_name);

/// STARTTLS, receiving side: as connect(plain, ...) but runs accept().
asio::awaitable<std::unique_ptr<transport>> accept(std::unique_ptr<transport> plain, const context& ctx);

/// What was negotiated on a TLS transport.
struct connection_info {
    int version = 0;         ///< e.g. 0x0304 for TLS 1.3
    std::string cipher;      ///< the cipher suite's standard name
    std::string alpn;        ///< the selected ALPN protocol, "" when none
    std::string server_name; ///< SNI: sent (client) or received (server), "" when none
    bool session_reused = false;
    bool peer_verified = false; ///< the peer's certificate was verified (chain and name)
};

/// The negotiated parameters of `t`; nullopt when `t` is not a TLS transport
/// of this library.
std::optional<connection_info> info(const transport& t);

} // namespace xmpp::tls

template <>
struct boost::system::is_error_code_enum<xmpp::tls::errc> : std::true_type {};
