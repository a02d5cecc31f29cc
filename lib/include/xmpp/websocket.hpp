// RFC 7395 WebSocket transport (client and server, ws:// and wss://) on
// Boost.Beast, and XEP-0156 discovery of a domain's WebSocket endpoint.
//
// The WebSocket runs over any xmpp::transport: plain TCP for ws://, the
// library's TLS transport for wss:// (the same adapter, verification and
// channel binding as XMPP over TCP). The result is a message-oriented
// transport (transport::message_oriented()): the session frames the XML
// stream with <open/> and <close/> and sends one element per text message.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>

#include <xmpp/net/resolver.hpp>
#include <xmpp/tls.hpp>
#include <xmpp/transport.hpp>

namespace xmpp::ws {

/// Why a WebSocket step failed. Value 0 is reserved for "no error".
enum class errc {
    handshake_failed = 1, ///< the HTTP upgrade failed (status, headers; what() has the detail)
    no_subprotocol,       ///< the peer did not agree on the "xmpp" subprotocol (RFC 7395 3.2)
    binary_frame,         ///< a binary message arrived: XMPP uses text frames only (RFC 7395 3.2)
    message_too_large,    ///< a message exceeds the configured maximum
    bad_url,              ///< not a ws:// or wss:// URL
    not_found,            ///< the server side: the request's path is not the endpoint's
    discovery_failed,     ///< XEP-0156: no WebSocket endpoint found (what() says where it looked)
};

/// The category of errc; name() is "xmpp.ws".
const boost::system::error_category& category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

/// A parsed ws:// or wss:// URL.
struct url {
    bool secure = false;   ///< wss
    std::string host;      ///< host name or IP literal (brackets removed)
    std::uint16_t port = 0; ///< explicit, else 80 / 443
    std::string target = "/"; ///< path and query
};

/// Parses `text`; sets ec (errc::bad_url) for anything but ws:// or wss://
/// with a host.
url parse_url(std::string_view text, boost::system::error_code& ec);

/// Settings of both sides.
struct options {
    /// Largest message accepted (a whole element); bigger ones fail the read
    /// with errc::message_too_large. The session passes its
    /// xml::limits::max_element_bytes.
    std::size_t max_message_bytes = 256 * 1024;
    /// Largest HTTP upgrade request or response header block.
    std::size_t max_header_bytes = 8 * 1024;
    /// Client: the Host header and the request target.
    std::string host;
    std::string target = "/";
    /// Client: an Origin header to send ("" = none).
    std::string origin;
    /// Server: the path the endpoint answers; other paths get 404 and
    /// errc::not_found. "" accepts any path.
    std::string path = "/xmpp-websocket";
};

/// Client handshake over `lower` (RFC 6455 4.1 with Sec-WebSocket-Protocol:
/// xmpp, RFC 7395 3.2): the server must select "xmpp" (else
/// errc::no_subprotocol, after closing). Returns the message-oriented
/// transport; is_secure(), peer_verified() and channel_binding() are those
/// of `lower`. Throws boost::system::system_error. Cancellation of the
/// awaiting coroutine aborts the handshake. Runs on lower's executor.
asio::awaitable<std::unique_ptr<transport>> connect(std::unique_ptr<transport> lower, const options& opts);

/// Server handshake over `lower`: reads the HTTP upgrade request (at most
/// opts.max_header_bytes), answers 404 for another path, 400 for a request
/// that is not a WebSocket upgrade or does not offer "xmpp", and 101 with
/// Sec-WebSocket-Protocol: xmpp otherwise. Throws system_error (errc or the
/// socket's error) after answering; as connect() otherwise.
asio::awaitable<std::unique_ptr<transport>> accept(std::unique_ptr<transport> lower, const options& opts);

/// Settings of discover().
struct discovery_options {
    /// DNS for the HTTPS lookups.
    net::resolver_options dns;
    /// TLS: verified against the domain (never turned off by default).
    tls::client_options tls;
    /// HTTPS port of the domain (443; tests use another).
    std::uint16_t port = 443;
    /// Whole discovery deadline.
    std::chrono::milliseconds timeout{10000};
    /// Largest host-meta document read.
    std::size_t max_document_bytes = 64 * 1024;
    /// Accept ws:// links too (default: only wss://, XEP-0156 3.3 / RFC 7395 4).
    bool allow_insecure = false;
};

/// XEP-0156: the WebSocket endpoints (rel "urn:xmpp:alt-connections:websocket")
/// that https://<domain>/.well-known/host-meta (XRD, XEP-0156 3.1) and
/// host-meta.json (JRD, 3.2) list, in document order, XRD first, without
/// duplicates. Throws system_error with errc::discovery_failed when neither
/// document lists one (what() tells what each lookup gave), TLS and DNS
/// errors only when both lookups failed. `domain` in A-label form.
/// Cancellation of the awaiting coroutine aborts the lookups.
asio::awaitable<std::vector<std::string>> discover(std::string domain, const discovery_options& opts);

} // namespace xmpp::ws

template <>
struct boost::system::is_error_code_enum<xmpp::ws::errc> : std::true_type {};
