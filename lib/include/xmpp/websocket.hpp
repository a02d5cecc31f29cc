// RFC 7395 WebSocket transport (client and server, ws:// and wss://) on
// Boost.Beast, and XEP-0156 discovery of a domain's WebSocket endpoint.
//
// The WebSocket runs over any xmpp::transport: plain TCP for ws://, the
// library's TLS transport for wss:// (the same adapter, verification and
// channel binding as XMPP over TCP). The result is a message-oriented
// transport (transport::message_oriented()): the session frames the XML
// stream with <open/> and <close/> and sends one element per text message
// (RFC 7395 3.3).
//
// The returned transport, both sides:
// - read_some() returns bytes of one message per call, never of two;
//   message_complete() is true after the call that returned a message's
//   last byte (it keeps its value over calls that return none). After the
//   first wait_read() a read-ahead decodes what arrives (up to 64 KiB ahead
//   of the reader, then TCP back-pressure), so a read_some() loop gets every
//   message already received; nothing is buffered while idle. Fragmented
//   messages are reassembled (RFC 6455 5.4); empty messages carry no
//   element and are skipped. A binary message fails the read with
//   errc::binary_frame (RFC 7395 3.2 allows text only), one bigger than
//   options::max_message_bytes with errc::message_too_large (the peer gets
//   a Close frame 1009, RFC 6455 7.4.1), invalid UTF-8 with Beast's
//   websocket::error::bad_frame_payload (Close 1007); each after the
//   messages before it. A Close frame from the peer is answered (RFC 6455
//   5.5.1) and reads then report asio::error::eof. Pings are answered with
//   pongs; control frames never count as messages (RFC 7395 3.8 prefers
//   WebSocket pings to whitespace keepalives).
// - write() sends exactly one text message (never fragmented);
//   write_messages() frames several and hands them to the layer below in
//   one write. Client frames are masked (RFC 6455 5.3).
// - shutdown() sends a Close frame (1000, or 1003 after a binary message),
//   waits up to options::close_timeout for the peer's Close frame (RFC
//   6455 5.5.1, 7.1.1) while discarding data, then shuts the layer below
//   down (TLS close_notify, TCP FIN). close() aborts at once.
// - is_secure(), peer_verified(), tls_version(), channel_binding() and
//   remote_endpoint_text() are those of the layer below.
// - Not thread safe; all calls on the lower transport's executor (strand).
//   Destroy it with no wait_read() or write() pending (close() first); the
//   read-ahead keeps the executor busy until close() or the end of the
//   stream.
// - No permessage-deflate (RFC 7692) is offered or accepted.
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
    no_subprotocol,       ///< the peer did not agree on the "xmpp" subprotocol (RFC 7395 3.1)
    binary_frame,         ///< a binary message arrived: XMPP uses text messages only (RFC 7395 3.2)
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

/// Parses `text` (RFC 6455 3: "ws:" / "wss:" "//" host [":" port]
/// path-abempty ["?" query]); the scheme is case-insensitive and the host is
/// lowercased. Sets ec to errc::bad_url (and returns an empty url) for
/// another scheme, no host, a bad port, userinfo, a fragment (RFC 6455 3
/// forbids it), or characters that cannot go into an HTTP request line.
/// Thread safe.
url parse_url(std::string_view text, boost::system::error_code& ec);

/// Settings of both sides.
struct options {
    /// Largest message accepted (a whole element, all its fragments); bigger
    /// ones fail the read with errc::message_too_large. The session passes
    /// its xml::limits::max_element_bytes. 0 = no limit (not recommended).
    std::size_t max_message_bytes = 256 * 1024;
    /// Server: largest HTTP upgrade request header block (bigger: 431 and
    /// errc::handshake_failed). Client: the response must also fit Beast's
    /// 1536-byte handshake buffer, whichever is smaller.
    std::size_t max_header_bytes = 8 * 1024;
    /// shutdown(), and a client closing after a missing subprotocol: how
    /// long to wait for the peer's Close frame before the layer below is
    /// closed anyway (RFC 6455 7.1.1 has the server end TCP first).
    std::chrono::milliseconds close_timeout{5000};
    /// Client: the Host header (with ":port" when not the default) and the
    /// request target (path and query, e.g. url::target).
    std::string host;
    std::string target = "/";
    /// Client: an Origin header to send ("" = none).
    std::string origin;
    /// Server: the path the endpoint answers; other paths get 404 and
    /// errc::not_found. "" accepts any path.
    std::string path = "/xmpp-websocket";
};

/// Client handshake over `lower` (RFC 6455 4.1 with Sec-WebSocket-Protocol:
/// xmpp, RFC 7395 3.1), Host opts.host, target opts.target, Origin
/// opts.origin when set: the server must answer 101 and select "xmpp". A
/// 101 without it closes the WebSocket (Close frame 1002, up to
/// opts.close_timeout) and throws errc::no_subprotocol (RFC 7395 3.1: the
/// client MUST close the connection). Returns the message-oriented
/// transport (see the top of this header).
///
/// Throws boost::system::system_error after closing `lower`:
/// errc::handshake_failed for an HTTP status other than 101 or an invalid
/// answer (what() has the status or the reason), errc::no_subprotocol, the
/// layer's own error (eof, TLS, connection reset) otherwise;
/// std::invalid_argument for an empty host or CR/LF in a header value.
/// Cancellation of the awaiting coroutine aborts the handshake
/// (operation_aborted). Runs on lower's executor, as does the transport; not
/// thread safe (one strand). `opts` is copied.
asio::awaitable<std::unique_ptr<transport>> connect(std::unique_ptr<transport> lower, const options& opts);

/// Server handshake over `lower`: reads the HTTP upgrade request (at most
/// opts.max_header_bytes: else 431), answers 404 for another path than
/// opts.path (errc::not_found), 400 for a request that is not a WebSocket
/// upgrade (RFC 6455 4.2.1; errc::handshake_failed) or offers no "xmpp"
/// subprotocol (errc::no_subprotocol), 400 for data sent before the 101
/// (RFC 6455 4.1), 426 for another WebSocket version (RFC 6455 4.4), and
/// 101 with Sec-WebSocket-Protocol: xmpp otherwise. Throws system_error
/// after answering and closing `lower`; a peer that closes or fails first
/// gives the layer's error. Otherwise as connect().
asio::awaitable<std::unique_ptr<transport>> accept(std::unique_ptr<transport> lower, const options& opts);

/// Settings of discover().
struct discovery_options {
    /// DNS for the HTTPS lookups (A/AAAA of the domain).
    net::resolver_options dns;
    /// TLS: verified against the domain (never turned off by default);
    /// ALPN "http/1.1" is offered when `tls.alpn` is empty.
    tls::client_options tls;
    /// HTTPS port of the domain (443; tests use another).
    std::uint16_t port = 443;
    /// Whole discovery deadline (both documents are fetched at once).
    std::chrono::milliseconds timeout{10000};
    /// Largest host-meta document body read (bigger: that document counts
    /// as listing nothing). Response headers: at most 8 KiB.
    std::size_t max_document_bytes = 64 * 1024;
    /// Accept ws:// links too (default: only wss://: XEP-0156's security
    /// considerations prefer wss, RFC 7395 3.9 puts TLS at the WebSocket
    /// layer).
    bool allow_insecure = false;
};

/// XEP-0156 (HTTP lookup method, RFC 6415 host-meta): the WebSocket
/// endpoints (rel "urn:xmpp:alt-connections:websocket") that
/// https://<domain>/.well-known/host-meta (XRD, the required format) and
/// https://<domain>/.well-known/host-meta.json (JRD, optional) list, in
/// document order, XRD links first, without duplicates; only ws:// or
/// wss:// URLs that parse_url() accepts, wss:// only unless
/// opts.allow_insecure. Both documents are fetched concurrently over HTTPS
/// (HTTP/1.1, one connection each, the port opts.port) with TLS verified
/// against `domain` (or a redirect's host); up to 2 redirects (301, 302,
/// 303, 307, 308) are followed, only to https:// or to a path on the same
/// host. `domain` is an ASCII (A-label) name or an IP literal.
///
/// Throws boost::system::system_error: errc::discovery_failed when no
/// endpoint remains (what() says what each lookup gave: HTTP status,
/// parse error, links ignored); the DNS, TCP or TLS error of the XRD
/// lookup when both lookups failed that way (e.g.
/// tls::errc::hostname_mismatch), asio::error::timed_out when both ran out
/// of opts.timeout. Cancellation of the awaiting coroutine aborts the
/// lookups (operation_aborted). Runs on the awaiting coroutine's executor;
/// `opts` is copied.
asio::awaitable<std::vector<std::string>> discover(std::string domain, const discovery_options& opts);

} // namespace xmpp::ws

template <>
struct boost::system::is_error_code_enum<xmpp::ws::errc> : std::true_type {};
