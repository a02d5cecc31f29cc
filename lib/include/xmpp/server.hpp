// xmpp::server: the receiving side. Listens for client connections (TCP
// with STARTTLS, direct TLS, ws://, wss://), negotiates each stream with
// the same Negotiator and StreamFeature types as the client (TLS, SASL,
// resource binding) and hands every negotiated stream to the user as an
// xmpp::session, on that session's own strand.
//
//     xmpp::server srv(io.get_executor(), {.domain = "example.org", .tls = ctx, .sasl = {...}});
//     srv.listen({asio::ip::make_address("127.0.0.1"), 5222}, xmpp::listener_kind::tcp);
//     srv.start([&](xmpp::session s) {
//         s.set_handler([](xmpp::incoming in) -> asio::awaitable<bool> { ... });
//         keep(std::move(s)); // the session lives as long as the user keeps it
//     });
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <xmpp/sasl.hpp>
#include <xmpp/session.hpp>
#include <xmpp/stream_feature.hpp>
#include <xmpp/tls.hpp>
#include <xmpp/websocket.hpp>

namespace xmpp {

/// How a listener's connections start.
enum class listener_kind {
    tcp,        ///< XMPP over TCP (RFC 6120), STARTTLS offered (required by default)
    direct_tls, ///< TLS from the first byte (XEP-0368), ALPN xmpp-client
    ws,         ///< RFC 7395 WebSocket, no TLS
    wss,        ///< RFC 7395 WebSocket over TLS (ALPN http/1.1)
};

/// What to do when a client binds a resource that is already bound
/// (RFC 6120 7.7.2.2).
enum class bind_conflict {
    replace_old, ///< end the existing session with a <conflict/> stream error (Prosody's and ejabberd's default)
    refuse_new,  ///< answer the new request with a conflict stanza error
    rename_new,  ///< bind the new session to a generated resource instead
};

/// Settings of a server. Every limit and deadline has a default;
/// docs/ARCHITECTURE.md lists them.
struct server_options {
    /// The domain served: a stream header 'to' naming another gets
    /// host-unknown (RFC 6120 4.9.3.6).
    std::string domain;
    /// Server certificate and key: STARTTLS on tcp listeners, the
    /// handshake of direct_tls and wss listeners. Without one only
    /// unencrypted listeners work, and only with allow_plaintext.
    std::optional<tls::context> tls;
    /// Let clients authenticate without TLS on tcp and ws listeners (tests,
    /// loopback gateways). Off: STARTTLS is required on tcp and nothing is
    /// offered on ws. PLAIN is never offered without TLS either way.
    bool allow_plaintext = false;
    /// SASL (mechanisms, credential lookups, retries).
    sasl::server_options sasl;
    /// Resource conflicts.
    bind_conflict conflict = bind_conflict::replace_old;
    /// WebSocket endpoint settings (path, message and header limits).
    ws::options ws;
    /// When set, every WebSocket stream is answered with
    /// <close see-other-uri='...'/> right after its <open/> (RFC 7395 3.6.1):
    /// the endpoint has moved.
    std::string ws_see_other_uri;

    /// Parser limits of every stream (largest element, depth, attributes).
    xml::limits limits;
    /// From the TCP accept to the ready state: a client that has not
    /// finished TLS, SASL and bind by then is cut off.
    std::chrono::milliseconds handshake_timeout{30000};
    /// Each wait for the client during negotiation.
    std::chrono::milliseconds step_timeout{10000};
    /// Most connections still negotiating at once; past it new ones are
    /// closed at once (a flood of idle handshakes cannot exhaust memory).
    std::size_t max_pending = 1024;
    /// Most negotiated sessions alive at once; past it new connections are
    /// refused with a policy-violation stream error... after the header.
    std::size_t max_sessions = 100000;

    /// Settings of each negotiated session (iq_timeout, close_timeout,
    /// max_send_queue, max_handlers, read_size, on_read/on_write/on_closed
    /// hooks). Its address, password, host and TLS fields are unused.
    session_options session;
    /// Features offered after SASL and bind, in order.
    std::vector<std::shared_ptr<const stream_feature>> extra_features;
};

/// Receives the negotiated sessions. Called on the session's strand; the
/// session's reading starts when it returns, so a set_handler() inside
/// sees the first stanza. Dropping the session closes it.
using session_acceptor = std::function<void(session)>;

/// A receiving endpoint: listeners, the negotiation of each stream, the
/// registry of bound resources.
///
/// Thread safety: listen(), start(), stop() and the accessors may be called
/// from any thread. Negotiations run each on a strand of their own, so a
/// multi-threaded io_context spreads them over its threads.
class server {
public:
    server(asio::any_io_executor ex, server_options opts);
    /// Stops listening and closes every stream still negotiating; sessions
    /// already handed over live on with their owners.
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    /// Opens a listener on `ep` (port 0: any free port, see port()).
    /// Throws boost::system::system_error when the address cannot be
    /// bound, std::invalid_argument for a TLS kind without options.tls.
    /// Connections are accepted once start() has been called.
    void listen(const asio::ip::tcp::endpoint& ep, listener_kind kind);

    /// The local port of the i-th listener (in listen() order).
    std::uint16_t port(std::size_t i) const;

    /// Starts accepting; each negotiated session goes to `on_session`.
    void start(session_acceptor on_session);

    /// Closes the listeners and the streams still negotiating.
    void stop();

    /// Streams negotiating now, and sessions bound now (registered
    /// resources, whoever owns them).
    std::size_t pending() const noexcept;
    std::size_t bound() const noexcept;

    struct impl;

private:
    std::shared_ptr<impl> impl_;
};

} // namespace xmpp
